"""Writing outputs atomically: a file appears whole or not at all, and a failed write says why.

Every output goes to a temporary file in the destination's folder and is renamed into place
(``os.replace``, atomic on POSIX) only once it is complete, so a run killed half-way (Ctrl-C,
SIGKILL, a full disk) leaves the previous file untouched and no fragment behind. The
temporary name keeps the suffix, since some writers (matplotlib) choose the format by it.

A write that fails (a full disk, a file-size limit, a folder that went away) raises
:class:`OutputError`: one line naming the path and the errno. torch's own writer reports such a
failure as an ``enforce fail`` RuntimeError without the errno, so torch objects are serialised
in memory first and written here by Python, whose ``OSError`` carries it.
"""

from __future__ import annotations

import errno as errno_names
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from designer.errors import Error


class OutputError(Error):
    """An output could not be written: the path and the operating system's reason."""


def _output_error(path: Path, error: OSError) -> OutputError:
    code = error.errno
    name = errno_names.errorcode.get(code, "?") if code is not None else "no errno"
    reason = error.strerror or str(error)
    return OutputError(f"{path}: cannot write the file: {reason} (errno {code}, {name}); nothing was written "
                       f"and no temporary file was left")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block ends
    without an error, removed otherwise. An ``OSError`` on the way becomes :class:`OutputError`."""
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent or ".")
    except OSError as error:
        raise _output_error(path, error) from None
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        raise _output_error(path, error) from None
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """``Path(path).write_text(text)``, atomically."""
    write_bytes(path, text.encode())


def write_bytes(path: str | Path, data: bytes) -> None:
    """``Path(path).write_bytes(data)``, atomically, flushed to the disk before the rename (a
    full disk may only show at the flush)."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)``, atomically and with the errno of a failed write."""
    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def save_exported(program: Any, path: str | Path) -> None:
    """``torch.export.save(program, path)``, atomically and with the errno of a failed write."""
    import torch
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    write_bytes(path, buffer.getvalue())


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
