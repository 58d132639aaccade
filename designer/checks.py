"""Validation at the boundary: every user-given number, fraction and output path is checked
here, before any solve, training or pruning starts, with a message that names the field and
says what would be accepted (scikit-learn's habit). The API and the CLI share these checks.

Each function returns the value (converted where that is safe) or raises :class:`ValueError`.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any


def number(value: Any, name: str, minimum: float | None = None, strict: bool = False,
           maximum: float | None = None) -> float:
    """A finite real number, at least ``minimum`` (greater when ``strict``), at most ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name}: must be {'greater than' if strict else 'at least'} {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be at most {maximum:g}, got {value:g}")
    return float(value)


def positive(value: Any, name: str) -> float:
    return number(value, name, 0.0, strict=True)


def integer(value: Any, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number (an integral float such as 1e6 is accepted) within the bounds."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be at most {maximum}, got {value}")
    return value


def fraction(value: Any, name: str, include_zero: bool = True, include_one: bool = True) -> float:
    """A number in [0, 1], either end excluded on request."""
    value = number(value, name)
    low_ok = value > 0 or (include_zero and value == 0)
    high_ok = value < 1 or (include_one and value == 1)
    if not (low_ok and high_ok):
        interval = f"{'[' if include_zero else '('}0, 1{']' if include_one else ')'}"
        raise ValueError(f"{name}: must be in {interval}, got {value:g}")
    return value


def time_limit(value: Any, name: str = "time_limit") -> float:
    return number(value, name, 0.0, strict=True)


def scheduler(value: Any, name: str = "--scheduler") -> str:
    """Where parallel work runs: ``serial`` (here), ``local`` (a local Dask cluster) or a Dask
    scheduler's address such as ``tcp://host:8786``."""
    if isinstance(value, str) and value in ("serial", "local"):
        return value
    host, _, port = str(value).split("://", 1)[-1].rpartition(":") if isinstance(value, str) else ("", "", "")
    if not host or not port.isdigit():
        raise ValueError(f"{name}: expected serial, local or an address such as tcp://host:8786, got {value!r}")
    return value


def choice(value: Any, name: str, options: tuple[str, ...] | list[str]) -> str:
    if value not in options:
        raise ValueError(f"{name}: must be one of {', '.join(options)}, got {value!r}")
    return value


def _nearest_existing(path: Path) -> Path:
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path.cwd()


def _can_create_in(directory: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".mpdesign-check-"):
            return True
    except OSError:
        return False


def writable_file(path: str | Path | None, name: str) -> Path | None:
    """A path a file can be written to: not a folder, in a folder that exists and accepts
    files. Nothing is created: the check makes and removes a temporary file."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a folder; give a file name")
    if path.exists() and not (path.is_file() and os.access(path, os.W_OK)):
        raise ValueError(f"{name}: {path} exists and is not a regular file that can be overwritten")
    folder = path.parent
    if not folder.exists():
        raise ValueError(f"{name}: cannot write {path}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{name}: cannot write {path}: {folder} is a file, not a folder")
    if not _can_create_in(folder):
        raise ValueError(f"{name}: cannot write {path}: {folder} does not accept new files")
    return path


FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp")


def writable_figure(path: str | Path | None, name: str) -> Path | None:
    """:func:`writable_file` for a picture: its suffix names a format matplotlib writes."""
    path = writable_file(path, name)
    if path is not None and path.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"{name}: {path}: the suffix names the picture's format, one of {', '.join(FIGURE_SUFFIXES)}")
    return path


def writable_folder(path: str | Path, name: str) -> Path:
    """A folder outputs can be written into: an existing folder, or a path one can be made at."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name}: {path} is a file; give a folder")
    ancestor = _nearest_existing(path)
    if not ancestor.is_dir():
        raise ValueError(f"{name}: cannot make {path}: {ancestor} is a file, not a folder")
    if not _can_create_in(ancestor):
        raise ValueError(f"{name}: cannot write into {path}: {ancestor} does not accept new files")
    return path


def readable_file(path: str | Path, name: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{name}: {path}: no such file")
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a folder, not a file")
    if not path.is_file():  # a named pipe or a device would hang the command or never end
        raise ValueError(f"{name}: {path} is not a regular file (a pipe or a device); give a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{name}: {path} cannot be read")
    return path


def read_text(path: str | Path, name: str) -> str:
    """A text file's contents, or a ValueError for a missing, binary or unreadable one."""
    path = readable_file(path, name)
    data = path.read_bytes()
    if b"\0" in data[:4096]:
        raise ValueError(f"{name}: {path} is a binary file, not text")
    try:
        return data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is no content
    except UnicodeDecodeError:
        raise ValueError(f"{name}: {path} is not UTF-8 text") from None


def strict_json_object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads(..., object_pairs_hook=...)`` that refuses a key given twice (which plain
    JSON parsing would silently resolve to the last value)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"the key {key!r} appears twice in one object")
        data[key] = value
    return data


def reject_constants(token: str) -> None:
    """``parse_constant`` for ``json.loads``: NaN and Infinity are not JSON numbers."""
    raise ValueError(f"{token} is not a number JSON allows")


def parse_json(text: str) -> Any:
    """JSON text, strictly (every reader of a user's JSON goes through here): no key twice in an
    object, no NaN or Infinity. ``json.JSONDecodeError`` for text that is no JSON, ``ValueError``
    for JSON that breaks these rules."""
    import json
    return json.loads(text, object_pairs_hook=strict_json_object_pairs, parse_constant=reject_constants)


def load_json(path: str | Path, name: str) -> Any:
    """A JSON file, strictly (:func:`parse_json`)."""
    import json
    text = read_text(path, name)
    try:
        return parse_json(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name}: {path}: not valid JSON ({error})") from None
    except RecursionError:
        raise ValueError(f"{name}: {path}: JSON nested too deeply to be a file of ours") from None
    except ValueError as error:
        raise ValueError(f"{name}: {path}: {error}") from None
