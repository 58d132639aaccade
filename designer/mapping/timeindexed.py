"""What the two time-indexed pyomo models share (the address-free bound in ``milp.py`` and
COSMA's ILP in ``ilp.py``): sizes in units of their GCD, each tensor's possible residency
steps, and the schedule variables with their constraints.

  E[o,t]  operator o executes at step t, only for t in [ancestors(o), n - 1 - descendants(o)]
  (S1) sum_t E[o,t] = 1;  sum_o E[o,t] = 1
  (S2) precedence, cumulative form: sum_{u<=t} E[c,u] <= sum_{u<t} E[p,u] for every edge p -> c
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import reduce

import pyomo.environ as pyo

from designer.mapping.graph import TensorGraph


def gcd_unit(graph: TensorGraph, scratchpad_bytes: int) -> int:
    """The largest byte count dividing every tensor size and the scratchpad."""
    return reduce(math.gcd, [t.bytes for t in graph.tensors.values()] + [scratchpad_bytes])


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


def add_schedule(m: pyo.ConcreteModel, graph: TensorGraph, windows: dict[str, tuple[int, int]],
                 order: list[str] | None = None) -> Callable[[str, int], object]:
    """Declare ``m.E`` and add (S1)-(S2) to ``m.c`` (``order`` fixes the schedule); returns
    ``run(o, t)``: E[o,t], or 0 outside o's window."""
    m.E = pyo.Var([(o, t) for o, (lo, hi) in windows.items() for t in range(lo, hi + 1)], domain=pyo.Binary)
    for t, o in enumerate(order or []):
        for u in range(windows[o][0], windows[o][1] + 1):
            m.E[o, u].fix(1 if u == t else 0)

    def run(o: str, t: int):
        return m.E[o, t] if (o, t) in m.E else 0

    # (S1) one step per operator, one operator per step
    for o, (lo, hi) in windows.items():
        m.c.add(pyo.quicksum(m.E[o, t] for t in range(lo, hi + 1)) == 1)
    for t in range(len(graph.operators)):
        m.c.add(pyo.quicksum(run(o, t) for o in graph.operators) == 1)
    # (S2) precedence
    for p, c in graph.dag.edges:
        for t in range(windows[c][0], windows[c][1] + 1):
            m.c.add(pyo.quicksum(run(c, u) for u in range(t + 1)) <= pyo.quicksum(run(p, u) for u in range(t)))
    return run
