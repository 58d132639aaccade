"""Deadlines counted from the command's start: ``--time-limit`` bounds the whole command.

A time limit handed to a solver after minutes of capture or curve measurement would let the
command run far past what the user asked (``map --model`` on a large model printed "solving ...
up to 2 s" 33 s into a 10-s limit). So each command takes its :class:`Deadline` from the moment
it started (:func:`mark_command_start`, called by the CLI before it parses anything; the import
of this module for the API) and every stage asks it what is left, never the original limit.
The ``mpdesign`` program counts from the process's own start, its imports included.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_command_started = time.perf_counter()
_pinned = False  # the program's entry point set the start: argument parsing leaves it


def process_age() -> float:
    """Seconds since this process started (Linux: /proc; elsewhere 0, i.e. now)."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time, in ticks since boot
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def mark_command_start(age: float = 0.0, pin: bool = False) -> None:
    """The command started ``age`` seconds ago (the CLI calls this before parsing its arguments;
    the program's entry point with the process's age and ``pin=True``, so parsing keeps it)."""
    global _command_started, _pinned
    if _pinned and not pin:
        return
    _command_started, _pinned = time.perf_counter() - age, pin


def unpin() -> None:
    """The entry point's command is over: a later command (in the same process) marks its own start."""
    global _pinned
    _pinned = False


@dataclass(frozen=True)
class Deadline:
    """``seconds`` from ``start`` (a ``time.perf_counter()`` value)."""

    seconds: float
    start: float

    @classmethod
    def of_command(cls, seconds: float) -> "Deadline":
        """``seconds`` from the command's start."""
        return cls(seconds, _command_started)

    @classmethod
    def starting_now(cls, seconds: float) -> "Deadline":
        """``seconds`` from now: a stage's own share of a limit (every stage counts its time
        through one of these, never by subtracting clock readings itself)."""
        return cls(seconds, time.perf_counter())

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self, floor: float = 0.0) -> float:
        """Seconds left, at least ``floor`` (a stage that must run at all, such as a solver
        whose baselines answer within that floor)."""
        return max(floor, self.seconds - self.elapsed())

    def expired(self) -> bool:
        """No time left."""
        return self.elapsed() >= self.seconds
