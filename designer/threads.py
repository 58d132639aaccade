"""torch's intra-op threads for the machine a command finds, not the one it was written on.

torch starts one thread per core. On a 2-core machine whose other core is busy (a solver, a
notebook kernel, another job), two threads spin against each other: the Makefile measured the
test suite 10x slower that way, and the demo took 144 s beside one busy process on two threads
against 88 s on one (measured; README). So ``--threads auto`` counts the cores this process may run on (its affinity) less the
cores other processes keep busy, sampled from ``/proc/stat`` over a tenth of a second, and uses
at least one. ``OMP_NUM_THREADS``, when set, is the user's choice and wins over ``auto``.
"""

from __future__ import annotations

import os
import time


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs since boot, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat") as handle:
            fields = [float(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(seconds: float = 0.1) -> float:
    """How many of the machine's cores other processes keep busy now (0 where unknown)."""
    first = _cpu_times()
    if first is None:
        return 0.0
    time.sleep(seconds)
    second = _cpu_times()
    total = second[1] - first[1]
    if total <= 0:
        return 0.0
    return (second[0] - first[0]) / total * (os.cpu_count() or 1)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def choose_threads(requested: int = 0) -> int:
    """``requested`` when positive; else OMP_NUM_THREADS when set; else the free cores, at least 1."""
    if requested > 0:
        return requested
    from_environment = os.environ.get("OMP_NUM_THREADS", "")
    if from_environment.isdigit() and int(from_environment) > 0:
        return int(from_environment)
    cores = available_cores()
    return max(1, min(cores, round(cores - busy_cores())))


def use_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads by :func:`choose_threads`; the number set."""
    import torch
    threads = choose_threads(requested)
    torch.set_num_threads(threads)
    return threads
