"""Byte counts in the units people write: ``262144``, ``2.5e5``, ``256kB``, ``256 KiB``, ``1MB``,
``1.5MiB``. One parser for every option and file field that takes a size.

SI prefixes are powers of 1000 (kB, MB, GB: what the unit means), IEC prefixes powers of 1024
(KiB, MiB, GiB); ``KB`` (a common spelling of kilobyte) is read as 1000 too. A microcontroller's
"256 KB of SRAM" is usually 256 KiB: write ``256KiB`` for 262,144 bytes. The result is a whole
number of bytes: ``1.5kB`` is 1,500, ``0.3kB`` of a byte is refused.
"""

from __future__ import annotations

import math
import re

UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3,
         "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3}
_SIZE = re.compile(r"^\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_bytes(value: object, option: str) -> int:
    """``value`` (a number, or text with an optional unit) as a positive whole number of bytes;
    a clear error naming ``option`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{option}: a size in bytes, got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        match = _SIZE.match(str(value))
        if match is None or match.group(2).lower() not in UNITS:
            raise ValueError(f"{option}: a size such as 262144, 256kB, 256KiB or 1.5MB; got {value!r}")
        number, unit = float(match.group(1)), match.group(2).lower()
    size = number * UNITS[unit]
    if not math.isfinite(size) or size <= 0:
        raise ValueError(f"{option}: must be a positive size in bytes, got {value!r}")
    rounded = round(size)
    if abs(size - rounded) > 1e-6 * max(1.0, size):
        raise ValueError(f"{option}: {value!r} is not a whole number of bytes ({size:g})")
    return int(rounded)
