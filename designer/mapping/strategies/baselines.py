"""Baseline mappings, as COSMA compares against: a schedule (the graph's own topological
order, or a minimum-peak order), an eviction rule when the scratchpad is full (Belady: the
resident tensor used furthest in the future; greedy: the cheapest eviction, spilling costs its
price under the objective, e.g. its bytes; dropping a dead or host-backed tensor costs nothing), and TFLite-style first-fit
addresses. When fragmentation leaves no gap big enough it evicts more (spilling what is still
needed), and when a step's own operands still do not fit it retries the whole plan with
another placement rule (lowest address; highest; operands of the next step at the top).

Those rules only ever put a tensor at the edge of a gap, and a tensor resident in consecutive
steps cannot move, so on some graphs every rule fails at budgets where a mapping exists
(hypothesis found a 5-operator chain that fits 8 bytes only with its first tensor at address
1). There, and only there, :func:`baseline` lays the order out with the CP-SAT model in its
fixed-schedule mode, which finds a mapping whenever one exists for that order (or proves none
does); its ``method`` says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from designer.mapping.strategies.cpsat import solve_mapping
from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.io import Mapping, MappingOutcome, Step
from designer.mapping.core.objective import OFFCHIP_BYTES, Objective
from solvers.result import SolveResult, Status

EVICTIONS = ("belady", "greedy")
PLACEMENTS = ("first-fit", "last-fit", "next-on-top")
KEPT_ON_TOP = "kept-on-top"  # with a keep plan: tensors it keeps idle at the top, the others first-fit
EXACT_LAYOUT_SECONDS = 10.0  # for the CP-SAT layout when every placement rule fails


class PlacementError(RuntimeError):
    pass


def required_bytes(graph: TensorGraph) -> int:
    """M_R: the largest inputs + outputs of one operator; no smaller scratchpad can run it."""
    return max(graph.operand_bytes(op) for op in graph.operators)


def greedy_min_peak_order(graph: TensorGraph) -> list[str]:
    """List scheduling that runs, among ready operators, the one leaving the least live memory."""
    remaining_uses = {t: len(c) for t, c in graph.consumers.items()}
    done: set[str] = set()
    indegree = {op: graph.dag.in_degree(op) for op in graph.operators}
    ready = [op for op, d in indegree.items() if d == 0]
    order = []
    while ready:
        def effect(op: str) -> int:
            o = graph.operators[op]
            freed = sum(graph.tensors[t].bytes for t in set(o.inputs)
                        if graph.tensors[t].producer is not None and remaining_uses[t] == 1)
            return sum(graph.tensors[t].bytes for t in o.outputs if graph.consumers[t]) - freed

        op = min(ready, key=lambda o: (effect(o), list(graph.operators).index(o)))
        ready.remove(op)
        order.append(op)
        done.add(op)
        for t in set(graph.operators[op].inputs):
            remaining_uses[t] -= 1
        for succ in graph.dag.successors(op):
            indegree[succ] -= 1
            if indegree[succ] == 0:
                ready.append(succ)
    return order


def _gaps(resident: dict[str, int], graph: TensorGraph, capacity: int) -> list[tuple[int, int]]:
    spans = sorted((a, a + graph.tensors[n].bytes) for n, a in resident.items())
    gaps, cursor = [], 0
    for start, end in spans:
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < capacity:
        gaps.append((cursor, capacity))
    return gaps


def _place(size: int, gaps: list[tuple[int, int]], top: bool) -> int | None:
    fitting = [(s, e) for s, e in gaps if e - s >= size]
    if not fitting:
        return None
    if top:
        return max(e for _, e in fitting) - size
    return min(s for s, _ in fitting)


@dataclass
class _State:
    resident: dict[str, int]
    hosted: frozenset[str]
    step: Step | None = None


def _advance(graph: TensorGraph, order: list[str], t: int, state: _State, capacity: int, eviction: str,
             placement: str, next_use, objective: Objective, clear: bool = False, keep=None) -> _State | None:
    """Run step t from ``state`` with one placement rule; None when its operands do not fit.
    ``clear``: evict every tensor the step does not use before placing (a fallback that keeps
    the layout free of tensors other than the step's own). ``keep(name, t)``: a plan's wish to
    keep the tensor at step t; the tensors it does not keep are evicted first."""
    op_name = order[t]
    op = graph.operators[op_name]
    operands = list(dict.fromkeys(op.inputs + op.outputs))
    next_operands = set(graph.operands(order[t + 1])) if t + 1 < len(order) else set()
    hosted = set(state.hosted)
    # dead tensors go for free; inputs and weights are re-read from host wherever there is room,
    # except one this step uses again straight after the last: it stays, at its address (rule 6).
    # Where re-reading costs (the dram objective) they stay while room allows, like any tensor,
    # with a host copy from the start (evicting one writes nothing)
    def free_input(name: str) -> bool:
        return graph.tensors[name].producer is None and not objective.reloads_inputs

    resident = {n: a for n, a in state.resident.items()
                if (not free_input(n) and (next_use(n, t) < float("inf") or n in operands))
                or (free_input(n) and n in operands)}
    incoming = sorted((n for n in operands if n not in resident), key=lambda n: -graph.tensors[n].bytes)

    def eviction_key(name: str):
        cost = 0 if name in hosted or graph.tensors[name].producer is None else objective.transfer_cost(graph, name)
        key = (-next_use(name, t), cost) if eviction == "belady" else (cost, -next_use(name, t))
        return key if keep is None else (keep(name, t), *key)

    candidates = sorted((n for n in resident if n not in operands), key=eviction_key)
    spilled = []
    while True:
        trial = dict(resident)
        for name in incoming:
            top = (placement == "last-fit" or (placement == "next-on-top" and name in next_operands)
                   or (placement == "kept-on-top" and keep(name, t + 1)))
            address = _place(graph.tensors[name].bytes, _gaps(trial, graph, capacity), top)
            if address is None:
                break
            trial[name] = address
        else:
            if not (clear and candidates):
                break
        if not candidates:
            return None
        victim = candidates.pop(0)
        if victim not in hosted and graph.tensors[victim].producer is not None:
            spilled.append(victim)
            hosted.add(victim)
        del resident[victim]
    retrieved = [n for n in incoming if graph.tensors[n].producer not in (None, op_name)]
    return _State(trial, frozenset(hosted), Step(op_name, dict(trial), spilled, retrieved))


def plan(graph: TensorGraph, order: list[str], scratchpad_bytes: int, eviction: str = "belady",
         placement: str = "first-fit", max_backtracks: int | None = None,
         resident: dict[str, int] | None = None, hosted: set[str] | None = None,
         steps: int | None = None, objective: Objective = OFFCHIP_BYTES, keep=None) -> Mapping:
    """Plan the order step by step with ``placement``; when a step's operands cannot fit around
    the tensors carried into it, back up and place the earlier steps' tensors by the other
    rules (a depth-first search, at most ``max_backtracks`` retries, default 20 per step).

    ``resident`` and ``hosted`` continue a partial mapping: ``order`` then holds the operators
    still to run, and those tensors are where the earlier steps left them. ``steps`` plans only
    that many operators (the rest of ``order`` still counts as future uses). ``keep(name, t)``:
    evict first the tensors a plan does not keep at step t (:mod:`designer.mapping.strategies.keep`)."""
    if eviction not in EVICTIONS:
        raise ValueError(f"eviction: must be one of {', '.join(EVICTIONS)}, got {eviction!r}")
    if resident is None and not graph.is_schedule(order):
        raise ValueError("order: not a topological order of the graph's operators")
    positions = {op: i for i, op in enumerate(order)}
    uses = {t: sorted(positions[c] for c in consumers if c in positions) for t, consumers in graph.consumers.items()}

    def next_use(name: str, t: int) -> float:
        return next((u for u in uses[name] if u >= t), float("inf"))

    placements = PLACEMENTS + (KEPT_ON_TOP,) if keep is not None else PLACEMENTS
    rules = [(p, clear) for clear in (False, True) for p in [placement] + [q for q in placements if q != placement]]
    budget = max_backtracks if max_backtracks is not None else 20 * len(order)
    # stack[t] = (state before step t, index of the next rule to try at step t)
    stack: list[tuple[_State, int]] = [(_State(dict(resident or {}), frozenset(hosted or ())), 0)]
    deepest_failure = 0
    limit = len(order) if steps is None else min(steps, len(order))
    while len(stack) <= limit:
        t = len(stack) - 1
        state, rule = stack[-1]
        result = None
        while rule < len(rules) and result is None:
            result = _advance(graph, order, t, state, scratchpad_bytes, eviction, *rules[rule][:1], next_use,
                              objective, clear=rules[rule][1], keep=keep)
            rule += 1
        stack[-1] = (state, rule)
        if result is not None:
            stack.append((result, 0))
            continue
        deepest_failure = max(deepest_failure, t)
        budget -= 1
        stack.pop()
        if not stack or budget < 0:
            raise PlacementError(f"step {deepest_failure} ({order[deepest_failure]}): its operands do not fit "
                                 f"around the tensors carried into it, under every placement rule tried")
    return Mapping(scratchpad_bytes, [state.step for state, _ in stack[1:]], method=f"{eviction}/{placement}")


def baseline(graph: TensorGraph, scratchpad_bytes: int, order: list[str] | None = None,
             eviction: str = "belady", objective: Objective = OFFCHIP_BYTES) -> Mapping:
    """The cheapest valid plan over the placement rules for this order and eviction rule."""
    order = order or graph.topological_order()
    best, failures = None, []
    for placement in PLACEMENTS:
        try:
            mapping = plan(graph, order, scratchpad_bytes, eviction, placement, objective=objective)
        except PlacementError as err:
            failures.append(str(err))
            continue
        if best is None or objective.of_steps(graph, mapping.steps) < objective.of_steps(graph, best.steps):
            best = mapping
    return best if best is not None else _exact_layout(graph, scratchpad_bytes, order, eviction, failures, objective)


def all_baselines(graph: TensorGraph, scratchpad_bytes: int, orders: dict[str, list[str]],
                  objective: Objective = OFFCHIP_BYTES, evictions: tuple[str, ...] = EVICTIONS) -> dict[str, Mapping]:
    """Every baseline that places all steps, by name ``order/eviction``."""
    found = {}
    for order_name, order in orders.items():
        for eviction in evictions:
            try:
                found[f"{order_name}/{eviction}"] = baseline(graph, scratchpad_bytes, order, eviction, objective)
            except PlacementError:
                continue
    return found


def solve_baseline(graph: TensorGraph, scratchpad_bytes: int, time_limit: float = 60.0, *,
                   objective: Objective = OFFCHIP_BYTES, orders: dict[str, list[str]] | None = None,
                   evictions: tuple[str, ...] = EVICTIONS) -> MappingOutcome:
    """The mapping strategy: the cheapest baseline over ``orders`` (named schedules; default the
    graph's topological order) and eviction rules. No bound; ``time_limit`` caps only the
    CP-SAT layout fallback."""
    start = time.perf_counter()
    found = all_baselines(graph, scratchpad_bytes, orders or {"topological": graph.topological_order()},
                          objective, evictions)
    seconds = time.perf_counter() - start
    if not found:
        return MappingOutcome(None, SolveResult(Status.NO_SOLUTION, seconds=seconds, solver="baseline",
                                                message="no baseline could place every step"))
    name, best = min(found.items(), key=lambda item: objective.of_steps(graph, item[1].steps))
    return MappingOutcome(best, SolveResult(Status.FEASIBLE, objective=objective.of_steps(graph, best.steps),
                                            seconds=seconds, solver="baseline", message=f"best baseline: {name}"))


def _exact_layout(graph: TensorGraph, scratchpad_bytes: int, order: list[str], eviction: str,
                  failures: list[str], objective: Objective = OFFCHIP_BYTES,
                  time_limit: float = EXACT_LAYOUT_SECONDS) -> Mapping:
    outcome = solve_mapping(graph, scratchpad_bytes, time_limit, order=order, objective=objective)
    if outcome.mapping is None:
        reason = ("CP-SAT proves that no mapping of this order fits" if outcome.result.status == Status.INFEASIBLE
                  else f"CP-SAT found no layout in {time_limit:g} s either")
        raise PlacementError(f"{failures[0]}; {reason}")
    return replace(outcome.mapping, method=f"{eviction}/cp-sat layout (every placement rule failed)")
