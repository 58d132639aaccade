"""A file runs no code unless the user said so: the one check before any pickle is opened.

A saved ``ExportedProgram`` (``.pt2``) holds pickled objects, and unpickling can run any code
the file's author put there. Every reader of such a file calls :func:`require_trust` at the
moment it opens the file (not in an earlier check a caller might skip), and ``trust`` must be
the boolean ``True``: a string such as ``"no"`` is refused, not read as true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def check_trust_value(trust: Any) -> bool:
    """``trust`` as given, if it is a bool; a ``ValueError`` otherwise."""
    if not isinstance(trust, bool):
        raise ValueError(f"trust: must be True or False (--trust on the command line), got {trust!r}")
    return trust


def require_trust(trust: Any, path: str | Path, what: str = "a .pt2 archive") -> None:
    """Refuse to open ``path`` (which can run code when loaded) unless ``trust`` is ``True``."""
    if not check_trust_value(trust):
        raise ValueError(f"--trust: {path} is {what}, whose pickled parts can run code when loaded; give --trust "
                         f"(trust=True in the API) if you trust where it came from")
