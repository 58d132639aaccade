"""Writing outputs atomically: a file appears whole or not at all.

Every output goes to a temporary file in the destination's folder and is renamed into place
(``os.replace``, atomic on POSIX) only once it is complete, so a run killed half-way (Ctrl-C,
SIGKILL, a full disk) leaves the previous file untouched and no fragment behind. The
temporary name keeps the suffix, since some writers (matplotlib) choose the format by it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block ends
    without an error, removed otherwise."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent or ".")
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """``Path(path).write_text(text)``, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_figure(figure, path: str | Path, dpi: int = 120) -> None:
    """A matplotlib figure saved atomically (the format from the suffix) and closed."""
    import matplotlib.pyplot as plt
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=dpi)
    finally:
        plt.close(figure)
