"""The mapping problem as data: a graph, a scratchpad (bytes or a budget's name), a strategy,
an objective and their options; its budgets M_R / M_P / M_H, computed within its time limit.

    problem = MappingProblem(graph, scratchpad="M_H", strategy="cpsat", objective="offchip")
    result = solve(problem)           # designer.mapping.stages: mapping, status, objective, bound, gap

Everything is checked when the problem is built, cheapest first (names, the order, a byte
scratchpad against M_R), before the budgets' search; :mod:`designer.mapping.stages` solves it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from designer import checks
from designer.errors import Error
from designer.mapping.strategies.baselines import greedy_min_peak_order, required_bytes
from designer.mapping.strategies.cpsat import min_peak
from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.io import Mapping
from designer.mapping.core.objective import Objective, objective_named
from designer.mapping.core.simulate import simulate
from designer.mapping.strategies import ORDERS, check_strategy
from designer.units import parse_bytes
from solvers.result import Status


class MappingError(Error, ValueError):
    """A mapping problem that cannot be posed (a budget below M_R, an unknown strategy)."""


@dataclass
class Budgets:
    """M_R (nothing smaller runs), M_P (least peak without spilling) and M_H (their middle)."""

    required: int
    peak: int
    peak_proven: bool
    min_peak_order: list[str]

    @property
    def halfway(self) -> int:
        return (self.required + self.peak) // 2

    def bytes_of(self, scratchpad: int | str) -> int:
        """A scratchpad as bytes: a budget's name (M_R, M_H, M_P), or bytes as they are."""
        value = check_scratchpad(scratchpad)
        return {"M_R": self.required, "M_P": self.peak, "M_H": self.halfway}.get(value, value)

    def to_dict(self) -> dict:
        return {"M_R": self.required, "M_P": self.peak, "M_H": self.halfway, "M_P_proven": self.peak_proven}


# CP-SAT's deterministic seconds for M_P's search (a work limit: the same on any machine), sized
# to the graph: a fixed 2.0 stopped MobileNetV2's 307-operator, 672-tensor training graph with
# no solution (the greedy 20,751,080 stood in), where 8 prove 19,827,240 in 1 s of wall time
BUDGET_WORK = 2.0
BUDGET_WORK_PER_ELEMENT = 0.02  # per operator and per tensor


def budget_work(graph: TensorGraph) -> float:
    """The work limit of M_P's search for ``graph``: :data:`BUDGET_WORK`, more for large graphs."""
    return max(BUDGET_WORK, BUDGET_WORK_PER_ELEMENT * (len(graph.operators) + len(graph.tensors)))


def budgets(graph: TensorGraph, time_limit: float = 60.0, work_limit: float | None = None) -> Budgets:
    """M_R, M_P and M_H. M_P is the least peak CP-SAT finds in ``work_limit`` deterministic
    seconds (one worker; default :func:`budget_work`, sized to the graph), so it does not move
    with the time limit or the machine's load; should
    the wall clock (``time_limit``) stop the search first, the greedy order's peak stands in,
    also the same on every machine, and never above the greedy peak in any case."""
    greedy = greedy_min_peak_order(graph)
    greedy_peak = peak_of(graph, greedy)
    work = budget_work(graph) if work_limit is None else work_limit
    result, order, settled = min_peak(graph, time_limit=time_limit, work_limit=work)
    if order is None or not settled or result.objective >= greedy_peak:
        proven = settled and result.bound is not None and result.bound >= greedy_peak
        return Budgets(required_bytes(graph), greedy_peak, proven, greedy)
    return Budgets(required_bytes(graph), int(result.objective), result.status == Status.OPTIMAL, order)


def peak_of(graph: TensorGraph, order: list[str]) -> int:
    """Peak live bytes of a schedule that never spills (tensors live from producer to last use)."""
    position = {op: i for i, op in enumerate(order)}
    live = [0] * len(order)
    for name, tensor in graph.tensors.items():
        uses = [position[c] for c in graph.consumers[name]]
        if tensor.producer is None:
            for u in set(uses):
                live[u] += tensor.bytes
            continue
        start = position[tensor.producer]
        for t in range(start, max(uses + [start]) + 1):
            live[t] += tensor.bytes
    return max(live)


SCRATCHPAD_NAMES = ("M_R", "M_H", "M_P")


def check_scratchpad(text: str, option: str = "scratchpad") -> int | str:
    """The scratchpad as given: a budget's name (M_R, M_H, M_P) or a positive whole number of
    bytes, with a unit or without (:func:`designer.units.parse_bytes`: ``256KiB``, ``1.5MB``);
    checked before any budget is computed. ``option``: what an error names (the command line
    passes ``--scratchpad``)."""
    text = str(text).strip()
    if text.upper() in SCRATCHPAD_NAMES:
        return text.upper()
    try:
        return parse_bytes(text, option)
    except ValueError as error:
        raise MappingError(f"{error} (or M_R, M_H, M_P)") from None


BUDGET_SHARE = 0.2  # of the time limit, at most, for M_P's search when the problem computes its budgets


@dataclass
class MappingProblem:
    """``scratchpad``: bytes, or M_R, M_H, M_P (computed here). ``strategy``: a name in
    :data:`~designer.mapping.strategies.STRATEGIES`; ``objective``: a name in
    :data:`~designer.mapping.core.objective.OBJECTIVES` (or an :class:`Objective`). ``order``: ``free``
    (the strategy chooses the schedule), ``given`` (the graph's order) or a schedule (a list of
    operator names). ``time_limit`` bounds the budgets' search and the solve together.
    ``budgets``: computed before (e.g. once for a sweep over scratchpads) instead of here.
    ``start``: a mapping found before, e.g. at a smaller scratchpad (valid at every larger
    one): a candidate and the strategy's start, so the traffic never rises with the scratchpad.
    """

    graph: TensorGraph
    scratchpad: int | str = "M_H"
    strategy: str = "cpsat"
    objective: str | Objective = "offchip"
    order: str | list[str] = "free"
    time_limit: float = 60.0
    max_reloads: int = 2
    threads: int = 1
    lower_bound: bool = True  # also bound the traffic (forced liveness; the address-free MILP up to MILP_LIMIT ops)
    window: int = 40  # divide: operators per window
    seconds_per_window: float = 5.0  # divide: CP-SAT's time per window
    start: Mapping | None = None
    budgets: Budgets | None = None
    # what an error names for a field: the command line passes its options ({"scratchpad": "--scratchpad"}),
    # so a message is written with the caller's names, never rewritten after
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        begun = time.perf_counter()
        try:
            self._check_fields()
        except ValueError as error:
            raise MappingError(str(error)) from None
        if self.budgets is None:
            self.budgets = budgets(self.graph, time_limit=BUDGET_SHARE * self.time_limit)
        self.scratchpad_bytes = self.budgets.bytes_of(self.scratchpad)
        self.budget_seconds = time.perf_counter() - begun
        if self.start is not None:
            self.start.check_graph(self.graph, self.label("start"))
            self.start = Mapping(self.scratchpad_bytes, self.start.steps, self.start.method or "given start")
            replay = simulate(self.graph, self.start.to_dict(self.graph))
            if not replay.valid:
                raise MappingError(f"{self.label('start')}: not a valid mapping of this graph at "
                                   f"{self.scratchpad_bytes:,} bytes ({replay.errors[0]})")
            if self.fixed_order is not None and self.start.order != self.fixed_order:
                raise MappingError(f"{self.label('start')}: the problem keeps a given order; the start runs another")

    def _check_fields(self) -> None:
        checks.time_limit(self.time_limit, "time_limit")
        checks.integer(self.max_reloads, "max_reloads", minimum=0)
        checks.integer(self.threads, "threads", minimum=1, maximum=os.cpu_count() or 1)
        checks.integer(self.window, "window", minimum=2)
        checks.time_limit(self.seconds_per_window, "seconds_per_window")
        self.objective = objective_named(self.objective)
        if isinstance(self.order, str):
            checks.choice(self.order, "order", ORDERS)
        elif not self.graph.is_schedule(list(self.order)):
            raise ValueError("order: not a topological order of the graph's operators")
        check_strategy(self.strategy, self.order if isinstance(self.order, str) else "given", self.objective.name)
        self.scratchpad = check_scratchpad(self.scratchpad, self.label("scratchpad"))
        required = required_bytes(self.graph)
        if isinstance(self.scratchpad, int) and self.scratchpad < required:
            worst = max(self.graph.operators, key=self.graph.operand_bytes)
            raise ValueError(f"{self.label('scratchpad')}: {self.scratchpad:,} bytes is below M_R = {required:,}, "
                             f"the inputs and outputs of {worst!r}: no mapping exists as the layers are; a model's map "
                             f"(--model, or a .pt2) with --tiling auto splits layers into patches and goes below M_R")

    def label(self, name: str) -> str:
        """How an error names field ``name`` (:attr:`labels`, else the field's own name)."""
        return self.labels.get(name, name)

    @property
    def fixed_order(self) -> list[str] | None:
        """The schedule a given order keeps, or None when the strategy chooses it."""
        if self.order == "free":
            return None
        return self.graph.topological_order() if self.order == "given" else list(self.order)

    @property
    def min_peak_order(self) -> list[str]:
        return self.budgets.min_peak_order

