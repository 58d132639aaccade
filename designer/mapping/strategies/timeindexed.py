"""What the two time-indexed pyomo models share (the address-free bound in ``milp.py`` and
COSMA's ILP in ``ilp.py``): each tensor's possible residency steps, and the schedule variables
with their constraints (sizes and prices in the units of :mod:`designer.mapping.core.units`).

  E[o,t]  operator o executes at step t, only for t in [ancestors(o), n - 1 - descendants(o)]
  F[o,t]  o has run by step t: F[o,t] = sum_{u<=t} E[o,u], kept as a running sum
          F[o,t] = F[o,t-1] + E[o,t] (0 before o's window, 1 after it)
  (S1) sum_t E[o,t] = 1;  sum_o E[o,t] = 1
  (S2) precedence: F[c,t] <= F[p,t-1] for every edge p -> c

Writing the prefix sums out in every constraint that needs them (precedence, "still needed")
makes the model quadratic in the window lengths; the running sums F (and the host-copy sums H
of the two models) keep it linear (build times: benchmarks/README.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyomo.environ as pyo

from designer.mapping.core.graph import TensorGraph
from solvers.result import SolveResult, Status


class BuildTimeout(Exception):
    """A model's construction ran past its deadline (see :func:`check_deadline`)."""


def check_deadline(deadline: float | None) -> None:
    """Raise :class:`BuildTimeout` once ``time.perf_counter()`` is past ``deadline``: the
    model builders call it in their loops, so that building counts against a time limit."""
    if deadline is not None and time.perf_counter() > deadline:
        raise BuildTimeout


# handing a built pyomo model to HiGHS took 1.9x its build (MobileNet training graph) and 2.0x
# (a ResNet-18 training graph) here: 3x leaves room for a busier machine
LOAD_FACTOR = 3.0


def build_then_solve(build, solve, time_limit: float, solver: str) -> tuple[object, SolveResult]:
    """``build(deadline)`` within half of ``time_limit``, then ``solve(model, seconds)`` with
    what is left, unless loading the model (about ``LOAD_FACTOR`` times its build) would not
    fit: a model that cannot be built and solved in its share is skipped, and the result says
    so, rather than running past the limit. Returns the model (or None) and the result."""
    start = time.perf_counter()
    try:
        model = build(start + 0.5 * time_limit)
    except BuildTimeout:
        return None, SolveResult(Status.NO_SOLUTION, seconds=time.perf_counter() - start, solver=solver,
                                 message=f"skipped: the model could not be built in half of its {time_limit:.1f} s")
    built = time.perf_counter() - start
    left = time_limit - built
    if left < (LOAD_FACTOR + 0.5) * built:
        return None, SolveResult(Status.NO_SOLUTION, seconds=built, solver=solver,
                                 message=f"skipped: the model took {built:.1f} s to build, too large to load and solve "
                                         f"in the {max(left, 0):.1f} s left of its share")
    result = solve(model, max(0.1, left - LOAD_FACTOR * built))
    return model, result.replace(seconds=time.perf_counter() - start,
                                 message=f"{result.message}; model built in {built:.1f} s")





def residency_spans(graph: TensorGraph, windows: dict[str, tuple[int, int]]) -> dict[str, range]:
    """For each produced tensor, the steps it can be resident: from its producer's earliest
    step to the latest step of its last consumer (or producer)."""
    spans = {}
    for name, tensor in graph.tensors.items():
        if tensor.producer is None:
            continue
        last = max([windows[c][1] for c in graph.consumers[name]] + [windows[tensor.producer][1]])
        spans[name] = range(windows[tensor.producer][0], last + 1)
    return spans


@dataclass
class Schedule:
    """Expressions over a model's schedule variables (see :func:`add_schedule`)."""

    model: pyo.ConcreteModel
    windows: dict[str, tuple[int, int]]

    def run(self, o: str, t: int):
        """E[o,t]: o executes at step t (0 outside its window)."""
        return self.model.E[o, t] if (o, t) in self.model.E else 0

    def done(self, o: str, t: int):
        """F[o,t]: o has executed at step t or before."""
        lo, hi = self.windows[o]
        if t < lo:
            return 0
        if t >= hi:
            return 1
        return self.model.F[o, t]

    def pending(self, o: str, t: int):
        """o executes at step t or later: 1 - F[o,t-1]."""
        return 1 - self.done(o, t - 1)


def add_schedule(m: pyo.ConcreteModel, graph: TensorGraph, windows: dict[str, tuple[int, int]],
                 order: list[str] | None = None, deadline: float | None = None) -> Schedule:
    """Declare ``m.E`` and ``m.F`` and add the running sums and (S1)-(S2), one constraint list
    per family (``order`` fixes the schedule)."""
    m.E = pyo.Var([(o, t) for o, (lo, hi) in windows.items() for t in range(lo, hi + 1)], domain=pyo.Binary)
    m.F = pyo.Var([(o, t) for o, (lo, hi) in windows.items() for t in range(lo, hi)], bounds=(0, 1))
    for t, o in enumerate(order or []):
        for u in range(windows[o][0], windows[o][1] + 1):
            m.E[o, u].fix(1 if u == t else 0)
    schedule = Schedule(m, windows)
    m.running_sum, m.one_step_per_operator = pyo.ConstraintList(), pyo.ConstraintList()
    m.one_operator_per_step, m.precedence = pyo.ConstraintList(), pyo.ConstraintList()
    for o, (lo, hi) in windows.items():
        for t in range(lo, hi):
            m.running_sum.add(m.F[o, t] == schedule.done(o, t - 1) + m.E[o, t])

    # (S1) one step per operator, one operator per step
    for o, (lo, hi) in windows.items():
        m.one_step_per_operator.add(pyo.quicksum(m.E[o, t] for t in range(lo, hi + 1)) == 1)
    for t in range(len(graph.operators)):
        m.one_operator_per_step.add(pyo.quicksum(schedule.run(o, t) for o in graph.operators) == 1)
    # (S2) precedence
    # (at c's last step both sides are 1: p's window ends earlier)
    for p, c in graph.dag.edges:
        check_deadline(deadline)
        for t in range(windows[c][0], windows[c][1]):
            m.precedence.add(schedule.done(c, t) <= schedule.done(p, t - 1))
    return schedule


def add_host_copies(m: pyo.ConcreteModel, span: dict[str, range]) -> None:
    """Declare ``m.H``, H[T,t] = sum_{u<=t} S[T,u] (T has a host copy by step t), as a running
    sum over each produced tensor's span; ``m.S`` must exist."""
    m.H = pyo.Var([(name, t) for name, steps in span.items() for t in steps], bounds=(0, 1))
    m.host_copy_sum = pyo.ConstraintList()
    for name, steps in span.items():
        for t in steps:
            before = m.H[name, t - 1] if (name, t - 1) in m.H else 0
            m.host_copy_sum.add(m.H[name, t] == before + m.S[name, t])


def host_copy(m: pyo.ConcreteModel, name: str, t: int):
    """H[T,t], 0 before T's span."""
    return m.H[name, t] if (name, t) in m.H else 0
