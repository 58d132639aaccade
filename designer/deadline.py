"""Deadlines counted from the command's start: ``--time-limit`` bounds the whole command.

A time limit handed to a solver after minutes of capture or curve measurement would let the
command run far past what the user asked (``map --model`` on a large model printed "solving ...
up to 2 s" 33 s into a 10-s limit). So each command takes its :class:`Deadline` from the moment
it started (:func:`mark_command_start`, called by the CLI before it parses anything; the import
of this module for the API) and every stage asks it what is left, never the original limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

_command_started = time.perf_counter()


def mark_command_start() -> None:
    """The command starts now (the CLI calls this before parsing its arguments)."""
    global _command_started
    _command_started = time.perf_counter()


def command_started() -> float:
    """``time.perf_counter()`` at the command's start."""
    return _command_started


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
    def from_now(cls, seconds: float) -> "Deadline":
        return cls(seconds, time.perf_counter())

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self, floor: float = 0.0) -> float:
        """Seconds left, at least ``floor`` (a stage that must run at all, such as a solver
        whose baselines answer within that floor)."""
        return max(floor, self.seconds - self.elapsed())
