r"""The mapping problem without addresses, as a time-indexed MILP (pyomo + HiGHS): a lower bound.

Dropping addresses (fragmentation) relaxes the mapping problem, so the optimum of this model,
and any dual bound HiGHS proves on it, bounds the least traffic of every mapping from below.
On graphs that must spill it is much stronger than CP-SAT's own bound, so the mapping result
reports the larger of the two. Variables follow COSMA's names (sizes divided by their GCD):

  R[o,t]  operator o runs at step t (only t in [ancestors(o), n - 1 - descendants(o)])
  X[T,t]  produced tensor T is resident at step t
  S[T,t]  T is written to host as it leaves at step t (spilled)
  L[T,t]  T is read back from host at step t (retrieved)

(M1) sum_t R[o,t] = 1;  sum_o R[o,t] = 1
(M2) precedence, cumulative form: sum_{t'<=t} R[c,t'] <= sum_{t'<t} R[p,t'] for every edge p -> c
(M3) creation and use: R[p,t] <= X[T,t];  R[c,t] <= X[T,t] for every consumer c of T
(M4) continuity: X[T,t] <= X[T,t-1] + R[p,t] + L[T,t]
(M5) host copy: L[T,t] <= sum_{t'<t} S[T,t'];  sum_t S[T,t] <= 1
(M6) leaving while needed needs a host copy: X[T,t-1] - X[T,t] <= 1 - N[T,t] + sum_{t'<=t} S[T,t'],
     N[T,t] >= sum_{t'>=t} R[c,t'] for each consumer c (T is still needed at t)
(M7) capacity: sum_T size_T X[T,t] + sum_o R[o,t] inputs_without_producer(o) <= M
objective: minimise sum_T size_T sum_t (S[T,t] + L[T,t])
"""

from __future__ import annotations

import math
import time
from functools import reduce

import pyomo.environ as pyo

from designer.mapping.cpsat import position_windows
from designer.mapping.graph import TensorGraph
from solvers import highs
from solvers.result import SolveResult


def build_model(graph: TensorGraph, scratchpad_bytes: int) -> pyo.ConcreteModel:
    n = len(graph.operators)
    unit = reduce(math.gcd, [t.bytes for t in graph.tensors.values()] + [scratchpad_bytes])
    capacity = scratchpad_bytes // unit
    windows = position_windows(graph)
    steps = range(n)
    produced = [name for name, t in graph.tensors.items() if t.producer is not None]
    size = {name: graph.tensors[name].bytes // unit for name in graph.tensors}
    quicksum = pyo.quicksum

    m = pyo.ConcreteModel(name=f"mapping-lb-{graph.name}")
    m.R = pyo.Var([(o, t) for o, (lo, hi) in windows.items() for t in range(lo, hi + 1)], domain=pyo.Binary)
    # a tensor can be resident from its producer's earliest step to its last consumer's latest step
    span = {}
    for name in produced:
        producer = graph.tensors[name].producer
        last = max([windows[c][1] for c in graph.consumers[name]] + [windows[producer][1]])
        span[name] = range(windows[producer][0], last + 1)
    index = [(name, t) for name in produced for t in span[name]]
    m.X = pyo.Var(index, domain=pyo.Binary)
    m.S = pyo.Var(index, domain=pyo.Binary)
    m.L = pyo.Var(index, domain=pyo.Binary)
    m.N = pyo.Var(index, bounds=(0, 1))
    m.c = pyo.ConstraintList()

    def run(o: str, t: int):
        return m.R[o, t] if (o, t) in m.R else 0

    def resident(name: str, t: int):
        return m.X[name, t] if (name, t) in m.X else 0

    # (M1) one step per operator, one operator per step
    for o, (lo, hi) in windows.items():
        m.c.add(quicksum(m.R[o, t] for t in range(lo, hi + 1)) == 1)
    for t in steps:
        m.c.add(quicksum(run(o, t) for o in graph.operators) == 1)
    # (M2) precedence
    for p, c in graph.dag.edges:
        for t in range(windows[c][0], windows[c][1] + 1):
            m.c.add(quicksum(run(c, u) for u in range(t + 1)) <= quicksum(run(p, u) for u in range(t)))
    for name in produced:
        producer = graph.tensors[name].producer
        consumers = graph.consumers[name]
        for t in span[name]:
            # (M3) resident when created and when used
            m.c.add(run(producer, t) <= m.X[name, t])
            for c in consumers:
                m.c.add(run(c, t) <= m.X[name, t])
            # (M4) continuity; (M5) host copy
            m.c.add(m.X[name, t] <= resident(name, t - 1) + run(producer, t) + m.L[name, t])
            m.c.add(m.L[name, t] <= quicksum(m.S[name, u] for u in span[name] if u < t))
            # (M6) leaving while still needed
            for c in consumers:
                m.c.add(m.N[name, t] >= quicksum(run(c, u) for u in range(t, n)))
            m.c.add(resident(name, t - 1) - m.X[name, t]
                    <= 1 - m.N[name, t] + quicksum(m.S[name, u] for u in span[name] if u <= t))
        m.c.add(quicksum(m.S[name, t] for t in span[name]) <= 1)
    # (M7) capacity
    free_inputs = {o: sum(size[t] for t in dict.fromkeys(graph.operators[o].inputs) if graph.tensors[t].producer is None)
                   for o in graph.operators}
    for t in steps:
        m.c.add(quicksum(size[name] * m.X[name, t] for name in produced if (name, t) in m.X)
                + quicksum(free_inputs[o] * run(o, t) for o in graph.operators if free_inputs[o]) <= capacity)
    m.traffic = pyo.Objective(expr=quicksum(size[name] * (m.S[name, t] + m.L[name, t]) for name, t in index),
                              sense=pyo.minimize)
    m.unit = unit
    return m


def lower_bound(graph: TensorGraph, scratchpad_bytes: int, time_limit: float = 60.0, threads: int = 1) -> SolveResult:
    """HiGHS on the address-free model; ``bound`` (in bytes) bounds every mapping's traffic."""
    start = time.perf_counter()
    model = build_model(graph, scratchpad_bytes)
    built = time.perf_counter() - start
    result = highs.solve(model, time_limit=max(1.0, time_limit - built), rel_gap=1e-4, threads=threads)
    unit = model.unit
    if result.objective is not None:
        result.objective *= unit
    if result.bound is not None:
        result.bound = max(0.0, result.bound * unit)
    result.seconds = time.perf_counter() - start
    result.message += f"; model built in {built:.1f} s"
    return result
