"""The mapping problem as data (graph, scratchpad, mode, strategy, objective), its budgets
M_R / M_P / M_H, and the result type; :mod:`designer.mapping.solve` solves it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from designer import checks
from designer.mapping.baselines import greedy_min_peak_order, required_bytes
from designer.mapping.cpsat import min_peak
from designer.mapping.graph import TensorGraph
from designer.mapping.io import Mapping
from designer.mapping.objective import OFFCHIP_BYTES, Objective
from designer.mapping.simulate import simulate
from solvers.result import SolveResult, Status

MODES = ("joint", "fixed", "divide")


SOLVERS = ("cpsat", "ilp")


class MappingError(ValueError):
    """A mapping problem that cannot be posed (a budget below M_R, an unknown mode)."""


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

    def to_dict(self) -> dict:
        return {"M_R": self.required, "M_P": self.peak, "M_H": self.halfway, "M_P_proven": self.peak_proven}


BUDGET_WORK = 2.0  # CP-SAT's deterministic seconds for M_P's search (a work limit: the same on any machine)


def budgets(graph: TensorGraph, time_limit: float = 60.0, work_limit: float = BUDGET_WORK) -> Budgets:
    """M_R, M_P and M_H. M_P is the least peak CP-SAT finds in ``work_limit`` deterministic
    seconds (one worker), so it does not move with the time limit or the machine's load; should
    the wall clock (``time_limit``) stop the search first, the greedy order's peak stands in,
    also the same on every machine, and never above the greedy peak in any case."""
    greedy = greedy_min_peak_order(graph)
    greedy_peak = peak_of(graph, greedy)
    result, order, settled = min_peak(graph, time_limit=time_limit, work_limit=work_limit)
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


def check_scratchpad(text: str) -> int | str:
    """The scratchpad as given: a budget's name (M_R, M_H, M_P) or a positive whole number of
    bytes; checked before any budget is computed."""
    text = str(text).strip()
    if text.upper() in SCRATCHPAD_NAMES:
        return text.upper()
    try:
        value = float(text)
    except ValueError:
        raise MappingError(f"scratchpad: a byte count or M_R, M_H, M_P; got {text!r}") from None
    if not math.isfinite(value) or not value.is_integer() or value <= 0:
        raise MappingError(f"scratchpad: must be a positive whole number of bytes, got {text!r}")
    return int(value)


def parse_scratchpad(text: str, limits: Budgets) -> int:
    value = check_scratchpad(text)
    named = {"M_R": limits.required, "M_P": limits.peak, "M_H": limits.halfway}
    return named[value] if isinstance(value, str) else value


@dataclass
class MappingProblem:
    graph: TensorGraph
    scratchpad_bytes: int
    mode: str = "joint"  # joint: schedule, addresses and spills; fixed: the given schedule; divide: windows
    solver: str = "cpsat"  # cpsat (the default: faster, see benchmarks/mapping.py) or ilp (COSMA's ILP, HiGHS)
    order: list[str] | None = None  # for mode fixed (default: the graph's topological order)
    time_limit: float = 60.0
    max_reloads: int = 2
    threads: int = 1
    lower_bound: bool = True  # also bound the traffic (forced liveness; the time-indexed MILP: joint mode, up to solve.MILP_LIMIT ops)
    window: int = 40  # divide mode: operators per window
    seconds_per_window: float = 5.0
    objective: Objective = OFFCHIP_BYTES  # what the mapping minimises (off-chip bytes)
    # a mapping found before, e.g. at a smaller scratchpad (valid at every larger one): a candidate
    # and CP-SAT's start, so that the traffic never rises with the scratchpad
    start: Mapping | None = None

    def __post_init__(self) -> None:
        try:
            checks.time_limit(self.time_limit, "time_limit")
            checks.integer(self.max_reloads, "max_reloads", minimum=0)
            checks.integer(self.threads, "threads", minimum=1, maximum=os.cpu_count() or 1)
            checks.integer(self.scratchpad_bytes, "scratchpad_bytes", minimum=1)
        except ValueError as error:
            raise MappingError(str(error)) from None
        if self.mode not in MODES:
            raise MappingError(f"mode: must be one of {', '.join(MODES)}, got {self.mode!r}")
        required = required_bytes(self.graph)
        if self.scratchpad_bytes < required:
            worst = max(self.graph.operators, key=self.graph.operand_bytes)
            raise MappingError(f"scratchpad_bytes {self.scratchpad_bytes:,} is below M_R = {required:,}, the inputs "
                               f"and outputs of {worst!r}: no mapping exists")
        if self.solver not in SOLVERS:
            raise MappingError(f"solver: must be one of {', '.join(SOLVERS)}, got {self.solver!r}")
        if self.solver == "ilp" and self.mode == "divide":
            raise MappingError("mode divide solves its windows with CP-SAT; use solver cpsat")
        if self.order is not None and not self.graph.is_schedule(self.order):
            raise MappingError("order: not a topological order of the graph's operators")
        if self.start is not None:
            self.start = Mapping(self.scratchpad_bytes, self.start.steps, self.start.method or "given start")
            replay = simulate(self.graph, self.start.to_dict(self.graph))
            if not replay.valid:
                raise MappingError(f"start: not a valid mapping of this graph at {self.scratchpad_bytes:,} bytes "
                                   f"({replay.errors[0]})")
            if self.mode == "fixed" and self.start.order != (self.order or self.graph.topological_order()):
                raise MappingError("start: mode fixed keeps the given order; the start runs another")

    def solve(self, min_peak_order: list[str] | None = None) -> MappingResult:
        """Baselines, a bound and the chosen strategy (:func:`designer.mapping.solve.solve`)."""
        from designer.mapping.solve import solve
        return solve(self, min_peak_order)


@dataclass(frozen=True)
class MappingResult:
    """A solved mapping problem, built once.

    ``solve`` reports the returned ``mapping``: its status, objective (in the objective's unit),
    the best proven bound, their gap, the whole wall time, and in ``solver`` the method that
    produced it ("baseline min-peak/belady" when a baseline beat the solver). The strategy's own
    report is ``solver_result`` (and the address-free bound's, ``bound_result``), untouched."""

    problem: MappingProblem
    mapping: Mapping | None
    solve: SolveResult
    solver_result: SolveResult | None = None
    bound_result: SolveResult | None = None
    baselines: dict[str, Mapping] = field(default_factory=dict)
    replay: object = None

    @property
    def method(self) -> str:
        return self.solve.solver

    @property
    def offchip_bytes(self) -> int | None:
        return None if self.mapping is None else self.mapping.offchip_bytes(self.problem.graph)

    def baseline_bytes(self) -> dict[str, int]:
        return {name: m.offchip_bytes(self.problem.graph) for name, m in self.baselines.items()}

    def to_dict(self) -> dict:
        data = self.mapping.to_dict(self.problem.graph, self.solve) if self.mapping is not None else {}
        data.update(status=str(self.solve.status), bound=self.solve.bound, gap=self.solve.gap,
                    seconds=self.solve.seconds, baselines=self.baseline_bytes(), method=self.method,
                    objective=self.problem.objective.name, message=self.solve.message,
                    solver_status=None if self.solver_result is None else str(self.solver_result.status))
        return data
