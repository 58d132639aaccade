"""An output never replaces an input: the one check every command's files go through.

A command names the files it reads and the files it writes, each by the option the user typed
(``--out``, ``--save-curves``, the ``GRAPH`` argument, the file of ``--model PATH.py:F``).
:func:`refuse_clashes` resolves them all (symbolic links followed, ``..`` folded, hard links
recognised by device and inode) and refuses, before any work is done, an output that is one of
the inputs or that another output also names, by both options. The one overwrite a command may
mean on purpose is listed by the command in ``replaceable`` with the reason, and is reported.

The CLI declares every command's files in one table (:mod:`designer.cli.files_table`) that a
wrapper around each command consults, so a new command or option cannot skip the check; the
API's writers (:func:`designer.pruning.run.run_prune`) call it themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Union

PathLike = Union[str, Path]


def _identity(path: PathLike) -> tuple[str, tuple[int, int] | None]:
    """The file's real path, and its (device, inode) when it exists (hard links share it)."""
    real = os.path.realpath(os.fspath(path))
    try:
        status = os.stat(real)
    except OSError:
        return real, None
    return real, (status.st_dev, status.st_ino)


def _same(a: tuple[str, tuple[int, int] | None], b: tuple[str, tuple[int, int] | None]) -> bool:
    return a[0] == b[0] or (a[1] is not None and a[1] == b[1])


def model_file(reference: str | None) -> Path | None:
    """The source file of a ``PATH.py:FACTORY`` reference (None for ``package.module:factory``)."""
    if not reference or ":" not in reference:
        return None
    path = reference.rpartition(":")[0]
    return Path(path) if path.endswith(".py") else None


def refuse_clashes(inputs: Mapping[str, PathLike | None], outputs: Mapping[str, PathLike | None],
                   replaceable: Mapping[tuple[str, str], str] | None = None, force: bool = True) -> list[str]:
    """Raise ``ValueError`` naming both options when an output is an input or two outputs are one
    file; ``replaceable[(output, input)]`` allows that overwrite (its reason is returned as a
    note). Without ``force``, an output that exists already is refused too (``--force`` replaces
    it). Keys are the options as typed; ``None`` values are options not given."""
    replaceable = replaceable or {}
    given_inputs = [(name, Path(p), _identity(p)) for name, p in inputs.items() if p is not None]
    given_outputs = [(name, Path(p), _identity(p)) for name, p in outputs.items() if p is not None]
    notes, allowed = [], set()
    for position, (out_name, out_path, out_id) in enumerate(given_outputs):
        for in_name, in_path, in_id in given_inputs:
            if not _same(out_id, in_id):
                continue
            if (out_name, in_name) in replaceable:
                allowed.add(out_name)
                notes.append(f"{out_name}: replaces {in_path}, the {in_name} it was read from "
                             f"({replaceable[(out_name, in_name)]})")
                continue
            also = "" if out_path == in_path else f" ({out_path} and {in_path} are one file)"
            raise ValueError(f"{out_name}: {out_path} is the file given as {in_name}{also}; an output never "
                             f"replaces an input: give {out_name} another path")
        for other_name, other_path, other_id in given_outputs[:position]:
            if _same(out_id, other_id):
                also = "" if out_path == other_path else f" ({out_path} and {other_path} are one file)"
                raise ValueError(f"{out_name}: {out_path} is also the {other_name} output{also}; one would "
                                 f"replace the other: give each its own path")
    for out_name, out_path, out_id in given_outputs:
        if not force and out_id[1] is not None and out_name not in allowed and not out_path.is_dir():
            raise ValueError(f"{out_name}: {out_path} exists; give --force to replace it, or another {out_name}")
    return notes
