"""Addresses for a planned residency, all at once: dynamic storage allocation with cuts.

A keep-or-spill plan (:mod:`designer.mapping.strategies.keep`) says, for a schedule, over which gaps each
tensor stays resident; what is left is to give every stretch of residency (a *run*: from one
need over kept gaps to a later need) one address, with no two runs overlapping in both time
and address. The step-by-step planner places tensors as they arrive and cannot see what comes
later, so it fragments the scratchpad; this places the runs offline:

1. Runs are placed one by one (largest first, as TFLite's greedy-by-size planner, or longest,
   largest area, earliest: :data:`ORDERS`, the cheapest result kept), each at the
   lowest-waste hole free over its whole time span (best fit).
2. A run that fits nowhere is *cut*: its longest kept gap is given up (the tensor is dropped
   there and read back at the next need), and the two halves are placed in turn.
3. A run that cannot be cut (no kept gap: it only spans needs) makes room instead: placed runs
   that keep a gap covering its span are cut there (their bytes at that time are freed, their
   address elsewhere unchanged), cheapest to re-read first, until a hole opens.

Every cut costs traffic the plan did not count, so the mapping may cost more than the plan;
:func:`layout` returns None when even cutting leaves no room (the caller keeps its other layouts).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.io import Mapping, Step
from designer.mapping.core.objective import OFFCHIP_BYTES, Objective


@dataclass
class Run:
    """``tensor`` resident from step ``start`` to ``end`` (inclusive) at one address, idle over
    the kept gaps ``gaps`` ((first, last) steps) between its needs."""

    tensor: str
    size: int
    start: int
    end: int
    gaps: list[tuple[int, int]]
    address: int | None = None

    def cut(self, gap: tuple[int, int]) -> tuple[Run, Run]:
        """The run before and after one of its kept gaps (both hold a need: neither is empty)."""
        first, last = gap
        before = Run(self.tensor, self.size, self.start, first - 1, [g for g in self.gaps if g[1] < first],
                     self.address)
        after = Run(self.tensor, self.size, last + 1, self.end, [g for g in self.gaps if g[0] > last], self.address)
        return before, after


# The orders runs are placed in; each wins on some graph (fragmentation is order-dependent),
# and layouts take milliseconds, so all are tried.
ORDERS = {
    "largest first": lambda r: (-r.size, -(r.end - r.start), r.start),
    "longest first": lambda r: (-(r.end - r.start), -r.size, r.start),
    "largest area first": lambda r: (-(r.size * (r.end - r.start + 1)), r.start),
    "earliest first": lambda r: (r.start, -r.size),
}


@dataclass(frozen=True)
class Gap:
    """Steps ``first``..``last`` (inclusive) between two needs of ``tensor``; the second need is at ``last + 1``."""

    tensor: str
    first: int
    last: int


def needs(graph: TensorGraph, order: list[str]) -> dict[str, list[int]]:
    """Per tensor, the steps of ``order`` it must be resident at: its producer's (if any) and
    its consumers', ascending."""
    position = {op: t for t, op in enumerate(order)}
    return {name: sorted({position[c] for c in graph.consumers[name]}
                         | ({position[tensor.producer]} if tensor.producer is not None else set()))
            for name, tensor in graph.tensors.items()}


def gapped(graph: TensorGraph, name: str, objective: Objective = OFFCHIP_BYTES) -> bool:
    """Whether keeping ``name`` over a gap is a choice: a produced tensor, or an input or
    weight when re-reading it costs (the dram objective); else it is read wherever used, free."""
    return graph.tensors[name].producer is not None or objective.reloads_inputs


def gaps(graph: TensorGraph, order: list[str], objective: Objective = OFFCHIP_BYTES) -> list[Gap]:
    """Every gap with at least one step inside, over the tensors :func:`gapped`."""
    return [Gap(name, a + 1, b - 1) for name, points in needs(graph, order).items()
            if gapped(graph, name, objective) for a, b in zip(points, points[1:]) if b > a + 1]


def runs(graph: TensorGraph, order: list[str], kept: set[Gap], objective: Objective = OFFCHIP_BYTES) -> list[Run]:
    """The runs of a plan: ``kept`` holds every gap kept resident."""
    found = []
    for name, points in needs(graph, order).items():
        size = graph.tensors[name].bytes
        if not gapped(graph, name, objective):
            # inputs and weights are re-read where used: one run per stretch of consecutive uses
            # (resident on consecutive steps, a tensor keeps its address)
            start = points[0]
            for a, b in zip(points, points[1:] + [None]):
                if b != a + 1:
                    found.append(Run(name, size, start, a, []))
                    start = b
            continue
        run = Run(name, size, points[0], points[0], [])
        for a, b in zip(points, points[1:]):
            if b == a + 1 or Gap(name, a + 1, b - 1) in kept:
                run.end = b
                if b > a + 1:
                    run.gaps.append((a + 1, b - 1))
            else:
                found.append(run)
                run = Run(name, size, b, b, [])
        found.append(run)
    return found


def layout(graph: TensorGraph, order: list[str], kept: set[Gap], scratchpad_bytes: int,
           objective: Objective = OFFCHIP_BYTES) -> Mapping | None:
    """The cheapest mapping of the plan over the placement orders :data:`ORDERS` (module
    docstring), or None when none lays it out."""
    best, planned = None, runs(graph, order, kept, objective)
    for name, key in ORDERS.items():
        placed = _place_all(sorted(map(replace, planned), key=key), scratchpad_bytes, objective, graph)
        if placed is None:
            continue
        mapping = to_mapping(graph, order, placed, scratchpad_bytes, f"offline layout, {name}")
        if best is None or objective.of_steps(graph, mapping.steps) < objective.of_steps(graph, best.steps):
            best = mapping
    return best


def _place_all(queue: list[Run], capacity: int, objective: Objective, graph: TensorGraph) -> list[Run] | None:
    placed: list[Run] = []
    while queue:
        run = queue.pop(0)
        address = _hole(placed, run, capacity)
        if address is not None:
            run.address = address
            placed.append(run)
            continue
        if run.gaps:  # 2. give up its longest kept gap
            gap = max(run.gaps, key=lambda g: g[1] - g[0])
            queue[:0] = run.cut(gap)
            continue
        if not _make_room(placed, run, capacity, objective, graph):  # 3.
            return None
        queue.insert(0, run)
    return placed


def _overlapping(placed: list[Run], run: Run) -> list[Run]:
    return [p for p in placed if p.start <= run.end and run.start <= p.end]


def _hole(placed: list[Run], run: Run, capacity: int) -> int | None:
    """The lowest address of the smallest free hole that holds ``run`` over its span."""
    busy = sorted((p.address, p.address + p.size) for p in _overlapping(placed, run))
    best, cursor = None, 0
    for start, end in busy + [(capacity, capacity)]:
        if start - cursor >= run.size and (best is None or start - cursor < best[0]):
            best = (start - cursor, cursor)
        cursor = max(cursor, end)
    return None if best is None else best[1]


def _make_room(placed: list[Run], run: Run, capacity: int, objective: Objective, graph: TensorGraph) -> bool:
    """Cut placed runs idle over all of ``run``'s span, cheapest first, until it fits."""
    victims = sorted((p for p in _overlapping(placed, run)
                      if any(g[0] <= run.start and run.end <= g[1] for g in p.gaps)),
                     key=lambda p: objective.transfer_cost(graph, p.tensor))
    for victim in victims:
        gap = next(g for g in victim.gaps if g[0] <= run.start and run.end <= g[1])
        placed.remove(victim)
        placed.extend(victim.cut(gap))
        if _hole(placed, run, capacity) is not None:
            return True
    return False


def to_mapping(graph: TensorGraph, order: list[str], placed: list[Run], scratchpad_bytes: int,
                method: str) -> Mapping:
    position = {op: t for t, op in enumerate(order)}
    last_need = {name: max([position[c] for c in graph.consumers[name]], default=-1) for name in graph.tensors}
    resident: list[dict[str, int]] = [{} for _ in order]
    for run in placed:
        for t in range(run.start, run.end + 1):
            resident[t][run.tensor] = run.address
    steps, hosted = [], set()
    for t, op in enumerate(order):
        before = resident[t - 1] if t else {}
        spilled = [n for n in before if n not in resident[t] and graph.tensors[n].producer is not None
                   and last_need[n] >= t and n not in hosted]
        hosted.update(spilled)
        retrieved = [n for n in resident[t] if n not in before and graph.tensors[n].producer not in (None, op)]
        steps.append(Step(op, dict(sorted(resident[t].items(), key=lambda item: item[1])), spilled, retrieved))
    return Mapping(scratchpad_bytes, steps, method=method)
