r"""COSMA's integer linear program (pyomo + HiGHS): schedule, addresses and spills in one model.

The paper's equations 1-12 with the known holes closed (no preserve or spill at a tensor's
first step, one operator per step, nothing resident after its last use, a capacity cut, pair
variables only where lifetimes can overlap, sizes divided by their GCD). Indices: operators o,
steps t (o only at t in [ancestors(o), n - 1 - descendants(o)]), produced tensors T (producer
p(T), consumers C(T)), tensors without a producer F (inputs, weights: compulsory loads).

  E[o,t]    operator o executes at step t
  C[T,t]    T is created at t;  P[T,t] preserved (resident at t-1 and kept at t)
  S[T,t]    T is spilled at t (resident at t-1, not at t, written to host)
  R[T,t]    T is retrieved at t (read back from host);  X[T,t] = C + P + R, resident at t
  A[T,t]    base address of T at t (integer, units of the GCD);  B[T,U,t] T lies below U

(1)  sum_t E[o,t] = 1;  sum_o E[o,t] = 1
(2)  precedence: sum_{u<=t} E[c,u] <= sum_{u<t} E[p,u] for every edge p -> c
     ((1)-(2) are :mod:`designer.mapping.strategies.timeindexed`'s (S1)-(S2), shared with the bound model)
(3)  creation: C[T,t] = E[p(T),t]
(4)  preserve only what was resident: P[T,t] <= X[T,t-1];  P[T,first] = 0
(5)  retrieve only after a spill, never while resident: R[T,t] <= H[T,t-1],
     R[T,t] <= 1 - X[T,t-1];  at most one spill: H[T,t] = sum_{u<=t} S[T,u] <= 1
     (H and the schedule's F[o,t] = sum_{u<=t} E[o,u] are running sums, see timeindexed)
(6)  spill when leaving: S[T,t] <= X[T,t-1],  S[T,t] <= 1 - X[T,t];  S[T,first] = 0
(7)  use: E[c,t] <= X[T,t] for every consumer c of T
(8)  leaving while still needed needs a host copy: X[T,t-1] - X[T,t] <= 1 - N[T,t] + H[T,t]
     with N[T,t] >= 1 - F[c,t-1] (c runs at t or later) for each consumer c
(9)  nothing resident after its last use: X[T,t] <= C[T,t] + sum_c (1 - F[c,t-1])
(10) capacity cut: sum_T size_T X[T,t] + sum_{F in inputs(o)} size_F E[o,t] <= M
(11) addresses: 0 <= A[T,t] <= M - size_T;  pinned while preserved:
     |A[T,t] - A[T,t-1]| <= M (1 - P[T,t]);  an input used at t - 1 and t stays resident, so it
     keeps its address: |A[F,t] - A[F,t-1]| <= M (2 - X[F,t] - X[F,t-1])
(12) non-overlap, for T, U that can both be resident at t (inputs F resident when a consumer runs):
     A[T,t] + size_T <= A[U,t] + M (1 - B[T,U,t]) + M (2 - X[T,t] - X[U,t])
     A[U,t] + size_U <= A[T,t] + M B[T,U,t]       + M (2 - X[T,t] - X[U,t])
objective: minimise sum_{T,t} price_T (S[T,t] + R[T,t]), price_T the objective's price of moving
T once (its size for off-chip bytes), divided by the GCD of the prices

A tensor may come back at another address after a spill (only preserving pins it), as in the
CP-SAT model. HiGHS runs with tight feasibility tolerances and addresses are rounded when read;
the simulator replays every mapping, so a slip would be caught, not shipped.
"""

from __future__ import annotations

import pyomo.environ as pyo

from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.io import Mapping, MappingOutcome, Step
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

TOLERANCES = {"mip_feasibility_tolerance": 1e-9, "primal_feasibility_tolerance": 1e-9}


def build_model(graph: TensorGraph, scratchpad_bytes: int, order: list[str] | None = None,
                objective: Objective = OFFCHIP_BYTES, deadline: float | None = None) -> pyo.ConcreteModel:
    """The model above; ``order`` fixes the schedule (the paper's fixed-schedule mode);
    :class:`~designer.mapping.strategies.timeindexed.BuildTimeout` past ``deadline``."""
    n = len(graph.operators)
    unit = gcd_unit(graph, scratchpad_bytes)
    M = scratchpad_bytes // unit
    size = {name: t.bytes // unit for name, t in graph.tensors.items()}
    price, price_unit = transfer_prices(graph, objective)
    windows = graph.position_windows()
    produced = [name for name, t in graph.tensors.items() if t.producer is not None]
    inputs = [name for name, t in graph.tensors.items() if t.producer is None and graph.consumers[name]]
    quicksum = pyo.quicksum

    span: dict[str, range | list[int]] = dict(residency_spans(graph, windows))
    for name in inputs:
        steps = {t for c in graph.consumers[name] for t in range(windows[c][0], windows[c][1] + 1)}
        span[name] = sorted(steps)

    m = pyo.ConcreteModel(name=f"cosma-{graph.name}")
    for family in ("created", "preserved", "retrieved", "spilled", "resident_when_used", "still_needed",
                   "kept_only_while_needed", "capacity_cut", "address_kept", "no_overlap"):  # (3)-(12)
        m.add_component(family, pyo.ConstraintList())
    schedule = add_schedule(m, graph, windows, order, deadline)  # (1) and (2)
    run = schedule.run
    index = [(name, t) for name in produced for t in span[name]]
    m.C = pyo.Var(index, domain=pyo.Binary)
    m.P = pyo.Var(index, domain=pyo.Binary)
    m.S = pyo.Var(index, domain=pyo.Binary)
    m.R = pyo.Var(index, domain=pyo.Binary)
    m.N = pyo.Var(index, bounds=(0, 1))
    add_host_copies(m, {name: span[name] for name in produced})
    m.A = pyo.Var([(name, t) for name in produced + inputs for t in span[name]], domain=pyo.NonNegativeIntegers,
                  bounds=lambda _, name, t: (0, M - size[name]))

    def resident(name: str, t: int):
        return _resident(m, graph, run, name, t)

    for name in produced:
        check_deadline(deadline)
        _lifecycle(m, graph, schedule, span[name], name, resident)  # (3)-(9)
    # (10) capacity cut
    for t in range(n):
        m.capacity_cut.add(quicksum(size[name] * resident(name, t) for name in produced + inputs
                                    if t in span[name]) <= M)
    _addresses(m, produced, inputs, span, size, M, resident, deadline)  # (11)-(12)
    m.traffic = pyo.Objective(expr=quicksum(price[name] * (m.S[name, t] + m.R[name, t]) for name, t in index),
                              sense=pyo.minimize)
    m.unit, m.price_unit, m.span, m.produced, m.inputs = unit, price_unit, span, produced, inputs
    return m


def _resident(m: pyo.ConcreteModel, graph: TensorGraph, run, name: str, t: int):
    """X[name, t]: the tensor is in the scratchpad at step t."""
    if graph.tensors[name].producer is None:  # inputs: exactly while a consumer runs
        return pyo.quicksum(run(c, t) for c in graph.consumers[name])
    if (name, t) not in m.C:
        return 0
    return m.C[name, t] + m.P[name, t] + m.R[name, t]


def _lifecycle(m: pyo.ConcreteModel, graph: TensorGraph, schedule, steps, name: str, resident) -> None:
    """(3)-(9) one produced tensor's creation, preservation, retrievals and spills."""
    run, producer, consumers, first = schedule.run, graph.tensors[name].producer, graph.consumers[name], steps[0]
    for t in steps:
        X, X_before = resident(name, t), resident(name, t - 1)
        m.created.add(m.C[name, t] == run(producer, t))  # (3)
        m.preserved.add(m.P[name, t] <= X_before)  # (4)
        m.retrieved.add(m.R[name, t] <= host_copy(m, name, t - 1))  # (5)
        m.retrieved.add(m.R[name, t] <= 1 - X_before)
        m.spilled.add(m.S[name, t] <= X_before)  # (6)
        m.spilled.add(m.S[name, t] <= 1 - X)
        for c in consumers:
            m.resident_when_used.add(run(c, t) <= X)  # (7)
            m.still_needed.add(m.N[name, t] >= schedule.pending(c, t))  # (8)
        m.still_needed.add(X_before - X <= 1 - m.N[name, t] + m.H[name, t])
        m.kept_only_while_needed.add(X <= m.C[name, t] + pyo.quicksum(schedule.pending(c, t) for c in consumers))  # (9)
    m.P[name, first].fix(0)
    m.S[name, first].fix(0)


def _addresses(m: pyo.ConcreteModel, produced: list[str], inputs: list[str], span, size, M: int, resident,
               deadline: float | None) -> None:
    """(11) addresses pinned while preserved (inputs: while resident on consecutive steps);
    (12) non-overlap where two lifetimes can meet."""
    for name in produced:
        for t in span[name][1:]:
            m.address_kept.add(m.A[name, t] - m.A[name, t - 1] <= M * (1 - m.P[name, t]))
            m.address_kept.add(m.A[name, t - 1] - m.A[name, t] <= M * (1 - m.P[name, t]))
    for name in inputs:
        for t in span[name]:
            if t - 1 in span[name]:
                apart = 2 - resident(name, t) - resident(name, t - 1)
                m.address_kept.add(m.A[name, t] - m.A[name, t - 1] <= M * apart)
                m.address_kept.add(m.A[name, t - 1] - m.A[name, t] <= M * apart)
    tensors = produced + inputs
    pairs = [(a, b, t) for i, a in enumerate(tensors) for b in tensors[i + 1:]
             for t in sorted(set(span[a]) & set(span[b]))]
    m.B = pyo.Var(pairs, domain=pyo.Binary)
    for i, (a, b, t) in enumerate(pairs):
        if i % 1000 == 0:
            check_deadline(deadline)
        both = 2 - resident(a, t) - resident(b, t)
        m.no_overlap.add(m.A[a, t] + size[a] <= m.A[b, t] + M * (1 - m.B[a, b, t]) + M * both)
        m.no_overlap.add(m.A[b, t] + size[b] <= m.A[a, t] + M * m.B[a, b, t] + M * both)


def extract(graph: TensorGraph, model: pyo.ConcreteModel, scratchpad_bytes: int) -> Mapping:
    """Rebuild the steps (order, resident addresses, spills, reloads) from a solved model."""
    def on(var) -> bool:
        return var.value is not None and var.value > 0.5

    at = {t: o for (o, t), var in model.E.items() if on(var)}
    steps = [Step(at[t]) for t in range(len(graph.operators))]
    unit = model.unit
    for name in model.produced:
        for t in model.span[name]:
            if on(model.C[name, t]) or on(model.P[name, t]) or on(model.R[name, t]):
                steps[t].resident[name] = int(round(model.A[name, t].value)) * unit
            if on(model.S[name, t]):
                steps[t].spilled.append(name)
            if on(model.R[name, t]):
                steps[t].retrieved.append(name)
    for name in model.inputs:
        for t in model.span[name]:
            if steps[t].op in graph.consumers[name]:
                steps[t].resident[name] = int(round(model.A[name, t].value)) * unit
    return Mapping(scratchpad_bytes, steps, method="ilp (highs)")


def solve_ilp(graph: TensorGraph, scratchpad_bytes: int, time_limit: float = 60.0, *,
              objective: Objective = OFFCHIP_BYTES, threads: int = 1, order: list[str] | None = None) -> MappingOutcome:
    """HiGHS on the full model (``order``: a fixed schedule); objective and bound in the
    objective's unit."""
    solver = "highs (COSMA ILP)"
    model, result = build_then_solve(
        lambda deadline: build_model(graph, scratchpad_bytes, order, objective, deadline),
        lambda model, seconds: highs.solve(model, time_limit=seconds, rel_gap=1e-6, threads=threads,
                                           options=TOLERANCES),
        time_limit, solver)
    if model is None:
        return MappingOutcome(None, result)
    mapping = extract(graph, model, scratchpad_bytes) if result.objective is not None else None
    return MappingOutcome(mapping, in_objective_units(result, model.price_unit).replace(solver=solver))
