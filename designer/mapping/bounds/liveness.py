r"""A lower bound on any schedule's traffic from forced liveness: a knapsack per operator.

Whatever the schedule, an operator o that descends from T's producer and is an ancestor of
one of T's consumers runs after T is made and before that consumer: T is *live across* o
(o itself not a consumer of T). At o's step T is resident, taking its bytes, or it left the
scratchpad while still needed, so it was written to host once and is read back at least once
before that consumer: at least 2 size_T of traffic, however often it happens.

More read-backs are forced where T's consumers form a chain c_1, c_2, ... (each an ancestor of
the next): T is live across the operators between c_{k-1} and c_k (stretch k, c_0 the
producer) in every schedule, and those stretches are disjoint in time, so a drop in each needs
its own read-back. Stretch 0 holds the other operators T is live across. With

  d[T,k]  T is dropped (absent at some operator) in stretch k (binary)
  w[T]    T is written to host;  reads[T]  how often it is read back

a mapping of any schedule gives a solution of

(F1) capacity at every operator o:  operands(o) + sum_{(T,k): o in stretch k of T} size_T (1 - d[T,k]) <= M
(F2) written once and read once if dropped anywhere:  w[T] >= d[T,k],  reads[T] >= d[T,k]
(F3) one read-back per dropped chain stretch:  reads[T] >= sum_{k >= 1} d[T,k]
objective: minimise sum_T price_T (w[T] + reads[T])

Under the dram objective an input or weight counts too, with no write (its host copy is
there from the start): it is live across the operators between two of its consumers that are
ordered in every schedule (the stretches of its chain of consumers, and stretch 0 for the
rest), and a drop there forces a re-read before the later consumer.

(a tensor dropped in a stretch may as well be absent at every operator of it: that only frees
room, at the same price), so its optimum, and any dual bound HiGHS proves on it, bounds every
mapping's cost from below: addresses, the order and the other read-backs are relaxed.
Where the order is nearly forced (training graphs: a forward activation is live across
everything between its forward use and its gradient) it is close to the keep-or-spill optimum
of a good order (:mod:`designer.mapping.strategies.keep`); it has a binary per tensor and stretch and one
row per operator, so it solves in seconds where the time-indexed bound (:mod:`.bound`) does not.
"""

from __future__ import annotations

import time

import networkx as nx
import pyomo.environ as pyo

from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.io import MappingOutcome
from designer.mapping.core.objective import OFFCHIP_BYTES, Objective
from designer.mapping.core.units import gcd_unit, in_objective_units, transfer_prices
from solvers import highs
from solvers.result import SolveResult, Status


def live_across(graph: TensorGraph, inputs: bool = False) -> dict[str, list[tuple[str, int]]]:
    """Per operator, the produced tensors (and with ``inputs`` the inputs and weights) live
    across it in every schedule, each with the stretch it is live in: 1, 2, ... between
    consecutive consumers of a chain (each an ancestor of the next), 0 elsewhere."""
    index = {op: i for i, op in enumerate(graph.operators)}
    descendants = {op: 0 for op in graph.operators}  # bitsets over operator indices
    ancestors = {op: 0 for op in graph.operators}
    order = list(nx.topological_sort(graph.dag))
    for op in order:
        for parent in graph.dag.predecessors(op):
            ancestors[op] |= ancestors[parent] | (1 << index[parent])
    for op in reversed(order):
        for child in graph.dag.successors(op):
            descendants[op] |= descendants[child] | (1 << index[child])
    across: dict[str, list[tuple[str, int]]] = {op: [] for op in graph.operators}
    names = list(graph.operators)
    for name, tensor in graph.tensors.items():
        consumers = sorted(set(graph.consumers[name]), key=lambda c: ancestors[c].bit_count())
        if not consumers or (tensor.producer is None and not inputs):
            continue
        not_consumer = ~sum(1 << index[c] for c in consumers)
        # live from the producer (an input: from any consumer) to a later consumer
        starts = [tensor.producer] if tensor.producer is not None else consumers
        inside = 0
        for first in starts:
            for consumer in consumers:
                inside |= descendants[first] & ancestors[consumer]
        inside &= not_consumer
        # a chain of consumers, each forced after the previous: the stretches between them
        # are disjoint in every schedule, so each needs its own read-back
        stretches, previous = [], tensor.producer or consumers[0]
        for consumer in consumers:
            if descendants[previous] >> index[consumer] & 1:
                stretches.append(descendants[previous] & ancestors[consumer] & not_consumer)
                previous = consumer
        for k, bits in enumerate([inside & ~sum(stretches)] + stretches):
            while bits:
                low = bits & -bits
                across[names[low.bit_length() - 1]].append((name, k))
                bits ^= low
    return across


def build_model(graph: TensorGraph, scratchpad_bytes: int, objective: Objective = OFFCHIP_BYTES) -> pyo.ConcreteModel:
    unit = gcd_unit(graph, scratchpad_bytes)
    capacity = scratchpad_bytes // unit
    price, price_unit = transfer_prices(graph, objective)
    across = live_across(graph, objective.reloads_inputs)
    size = {name: tensor.bytes // unit for name, tensor in graph.tensors.items()}
    rows = []
    for op, pairs in across.items():
        room = capacity - graph.operand_bytes(op) // unit
        if room < 0:
            raise ValueError(f"scratchpad_bytes: {scratchpad_bytes} is below operator {op}'s own operands, "
                             f"{graph.operand_bytes(op)} bytes")
        if sum(size[n] for n, _ in pairs) > room:  # only operators where not everything fits bind
            rows.append((pairs, room))
    m = pyo.ConcreteModel(name=f"liveness-{graph.name}")
    stretches = sorted({pair for pairs, _ in rows for pair in pairs})
    tensors = sorted({name for name, _ in stretches})
    m.d = pyo.Var(stretches, domain=pyo.Binary)
    m.w = pyo.Var(tensors, bounds=(0, 1))
    for name in tensors:  # an input or weight (dram) has its host copy: never written
        if graph.tensors[name].producer is None:
            m.w[name].fix(0)
    m.reads = pyo.Var(tensors, bounds=(0, None))
    m.written_once, m.read_back = pyo.ConstraintList(), pyo.ConstraintList()  # (F2)
    m.stretches, m.live_across = pyo.ConstraintList(), pyo.ConstraintList()  # (F2), (F1)
    chained: dict[str, list[int]] = {}
    for name, k in stretches:
        # (F2) dropped anywhere: written once, read back at least once
        if graph.tensors[name].producer is not None:
            m.written_once.add(m.w[name] >= m.d[name, k])
        m.read_back.add(m.reads[name] >= m.d[name, k])
        if k > 0:
            chained.setdefault(name, []).append(k)
    for name, ks in chained.items():
        # (F3) the chain's stretches each need their own read-back
        m.stretches.add(m.reads[name] >= pyo.quicksum(m.d[name, k] for k in ks))
    # (F1) what stays live across an operator fits beside its operands
    for pairs, room in rows:
        m.live_across.add(pyo.quicksum(size[n] * (1 - m.d[n, k]) for n, k in pairs) <= room)
    m.traffic = pyo.Objective(expr=pyo.quicksum(price[n] * (m.w[n] + m.reads[n]) for n in tensors),
                              sense=pyo.minimize)
    m.price_unit = price_unit
    return m


def liveness_bound(graph: TensorGraph, scratchpad_bytes: int, time_limit: float = 60.0, *,
                   objective: Objective = OFFCHIP_BYTES, threads: int = 1) -> MappingOutcome:
    """The bound strategy: HiGHS on the model; no mapping, the result's ``bound`` (in the
    objective's unit) bounds every mapping's cost from below, in every mode."""
    start = time.perf_counter()
    model = build_model(graph, scratchpad_bytes, objective)
    built = time.perf_counter() - start
    if not model.d:  # everything live across every operator fits beside its operands
        return MappingOutcome(None, SolveResult(Status.OPTIMAL, objective=0, bound=0, gap=0.0, seconds=built,
                                                solver="forced-liveness bound", message="no operator binds"))
    result = highs.solve(model, time_limit=max(0.5, time_limit - built), rel_gap=1e-6, threads=threads)
    result = in_objective_units(result, model.price_unit).replace(
        seconds=time.perf_counter() - start, solver="highs (forced-liveness bound)",
        message=f"{result.message}; model built in {built:.1f} s")
    return MappingOutcome(None, result)
