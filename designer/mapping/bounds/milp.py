r"""The mapping problem without addresses, as a time-indexed MILP (pyomo + HiGHS): a lower bound.

Dropping addresses (fragmentation) relaxes the mapping problem, so the optimum of this model,
and any dual bound HiGHS proves on it, bounds the least traffic of every mapping from below.
On graphs that must spill it is much stronger than CP-SAT's own bound, so the mapping result
reports the larger of the two. Variables as in COSMA's ILP (:mod:`designer.mapping.strategies.ilp`,
sizes divided by their GCD):

  E[o,t]  operator o executes at step t (only t in [ancestors(o), n - 1 - descendants(o)])
  X[T,t]  produced tensor T is resident at step t
  S[T,t]  T is written to host as it leaves at step t (spilled)
  R[T,t]  T is read back from host at step t (retrieved)

(M1)-(M2) the schedule: :mod:`designer.mapping.strategies.timeindexed`'s (S1)-(S2)
(M3) creation and use: E[p,t] <= X[T,t];  E[c,t] <= X[T,t] for every consumer c of T
(M4) continuity: X[T,t] <= X[T,t-1] + E[p,t] + R[T,t]
(M5) host copy: R[T,t] <= H[T,t-1];  H[T,t] = sum_{t'<=t} S[T,t'] <= 1 (a running sum)
(M6) leaving while needed needs a host copy: X[T,t-1] - X[T,t] <= 1 - N[T,t] + H[T,t],
     N[T,t] >= 1 - F[c,t-1] for each consumer c (T is still needed at t)
(M7) capacity: sum_T size_T X[T,t] + sum_o E[o,t] inputs_without_producer(o) <= M
objective: minimise sum_T price_T sum_t (S[T,t] + R[T,t]), price_T the objective's price of
moving T once (its size for off-chip bytes), divided by the GCD of the prices
"""

from __future__ import annotations

import pyomo.environ as pyo

from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.io import MappingOutcome
from designer.mapping.core.objective import OFFCHIP_BYTES, Objective
from designer.mapping.strategies.timeindexed import (
    add_host_copies,
    add_schedule,
    build_then_solve,
    check_deadline,
    host_copy,
    residency_spans,
)
from designer.mapping.core.units import gcd_unit, in_objective_units, transfer_prices
from solvers import highs


def build_model(graph: TensorGraph, scratchpad_bytes: int, objective: Objective = OFFCHIP_BYTES,
                deadline: float | None = None) -> pyo.ConcreteModel:
    """The model above (:class:`~designer.mapping.strategies.timeindexed.BuildTimeout` past ``deadline``)."""
    n = len(graph.operators)
    unit = gcd_unit(graph, scratchpad_bytes)
    capacity = scratchpad_bytes // unit
    price, price_unit = transfer_prices(graph, objective)
    windows = graph.position_windows()
    steps = range(n)
    span = residency_spans(graph, windows)
    produced = list(span)
    size = {name: graph.tensors[name].bytes // unit for name in graph.tensors}
    quicksum = pyo.quicksum

    m = pyo.ConcreteModel(name=f"mapping-lb-{graph.name}")
    for family in ("resident_when_created", "resident_when_used", "continuity", "read_needs_host_copy", "still_needed",
                   "leaving_while_needed", "capacity"):  # one list per family: (M3)-(M7)
        m.add_component(family, pyo.ConstraintList())
    schedule = add_schedule(m, graph, windows, deadline=deadline)  # (M1)-(M2)
    run = schedule.run
    index = [(name, t) for name in produced for t in span[name]]
    m.X = pyo.Var(index, domain=pyo.Binary)
    m.S = pyo.Var(index, domain=pyo.Binary)
    m.R = pyo.Var(index, domain=pyo.Binary)
    m.N = pyo.Var(index, bounds=(0, 1))
    add_host_copies(m, span)

    def resident(name: str, t: int):
        return m.X[name, t] if (name, t) in m.X else 0

    for name in produced:
        check_deadline(deadline)
        producer = graph.tensors[name].producer
        consumers = graph.consumers[name]
        for t in span[name]:
            # (M3) resident when created and when used
            m.resident_when_created.add(run(producer, t) <= m.X[name, t])
            for c in consumers:
                m.resident_when_used.add(run(c, t) <= m.X[name, t])
            # (M4) continuity; (M5) host copy
            m.continuity.add(m.X[name, t] <= resident(name, t - 1) + run(producer, t) + m.R[name, t])
            m.read_needs_host_copy.add(m.R[name, t] <= host_copy(m, name, t - 1))
            # (M6) leaving while still needed
            for c in consumers:
                m.still_needed.add(m.N[name, t] >= schedule.pending(c, t))
            m.leaving_while_needed.add(resident(name, t - 1) - m.X[name, t] <= 1 - m.N[name, t] + m.H[name, t])
    # (M7) capacity
    free_inputs = {o: sum(size[t] for t in dict.fromkeys(graph.operators[o].inputs) if graph.tensors[t].producer is None)
                   for o in graph.operators}
    for t in steps:
        m.capacity.add(quicksum(size[name] * m.X[name, t] for name in produced if (name, t) in m.X)
                + quicksum(free_inputs[o] * run(o, t) for o in graph.operators if free_inputs[o]) <= capacity)
    m.traffic = pyo.Objective(expr=quicksum(price[name] * (m.S[name, t] + m.R[name, t]) for name, t in index),
                              sense=pyo.minimize)
    m.unit, m.price_unit = unit, price_unit
    return m


def lower_bound(graph: TensorGraph, scratchpad_bytes: int, time_limit: float = 60.0, *,
                objective: Objective = OFFCHIP_BYTES, threads: int = 1) -> MappingOutcome:
    """HiGHS on the address-free model: no mapping; the result's ``bound`` (in the objective's
    unit) bounds every mapping's cost from below."""
    solver = "highs (address-free bound)"
    model, result = build_then_solve(
        lambda deadline: build_model(graph, scratchpad_bytes, objective, deadline),
        lambda model, seconds: highs.solve(model, time_limit=seconds, rel_gap=1e-4, threads=threads),
        time_limit, solver)
    if model is not None:
        result = in_objective_units(result, model.price_unit).replace(solver=solver)
    return MappingOutcome(None, result)
