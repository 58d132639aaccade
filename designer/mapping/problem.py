"""The mapping problem as data, its budgets, and one call that solves it against the baselines."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from designer import checks
from designer.mapping.baselines import EVICTIONS, PlacementError, baseline, greedy_min_peak_order, required_bytes
from designer.mapping.cpsat import min_peak, solve_mapping
from designer.mapping.divide import divide_and_conquer
from designer.mapping.graph import TensorGraph
from designer.mapping.ilp import solve_ilp
from designer.mapping.io import Mapping
from designer.mapping.milp import lower_bound
from designer.mapping.simulate import simulate
from solvers.result import SolveResult, Status, relative_gap

MODES = ("joint", "fixed", "divide")
MILP_LIMIT = 400  # operators up to which the address-free MILP bound is computed (353: 5 s to build)


SOLVERS = ("cpsat", "ilp")


def mode_allows_bound(mode: str) -> bool:
    return mode == "joint"  # the MILP schedules freely, so it bounds the joint problem only


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


def budgets(graph: TensorGraph, time_limit: float = 20.0) -> Budgets:
    result, order = min_peak(graph, time_limit=time_limit)
    if order is None:  # no schedule found in time: fall back to the greedy order's peak
        order = greedy_min_peak_order(graph)
        peak = peak_of(graph, order)
        return Budgets(required_bytes(graph), peak, False, order)
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
    lower_bound: bool = True  # also bound the traffic with the address-free MILP (graphs up to MILP_LIMIT ops)
    window: int = 40  # divide mode: operators per window
    seconds_per_window: float = 5.0

    def __post_init__(self) -> None:
        try:
            checks.time_limit(self.time_limit, "time_limit")
            checks.integer(self.max_reloads, "max_reloads", minimum=0)
            checks.integer(self.threads, "threads", minimum=1)
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

    def baselines(self, min_peak_order: list[str] | None = None) -> dict[str, Mapping]:
        orders = {"topological": self.order or self.graph.topological_order()}
        if self.mode != "fixed":  # joint and divide choose the schedule: the min-peak order is fair game
            orders["min-peak"] = min_peak_order or greedy_min_peak_order(self.graph)
        found = {}
        for order_name, order in orders.items():
            for eviction in EVICTIONS:
                try:
                    found[f"{order_name}/{eviction}"] = baseline(self.graph, self.scratchpad_bytes, order, eviction)
                except PlacementError:
                    continue
        return found

    def solve(self, min_peak_order: list[str] | None = None) -> MappingResult:
        """Baselines, then the chosen solver; never a mapping worse than the best baseline.

        CP-SAT (default): on graphs up to MILP_LIMIT operators the address-free MILP's lower
        bound first, then CP-SAT warm-started from the best baseline and told the bound; the
        result's bound is the best proven by either model. ILP: COSMA's model on HiGHS.
        Divide mode: CP-SAT window by window (:mod:`designer.mapping.divide`), no bound."""
        found = self.baselines(min_peak_order)
        best = min(found.values(), key=lambda m: m.offchip_bytes(self.graph), default=None)
        order = (self.order or self.graph.topological_order()) if self.mode == "fixed" else None
        if self.mode == "divide":
            mapping = divide_and_conquer(self.graph, self.scratchpad_bytes, window=self.window,
                                         seconds_per_window=self.seconds_per_window, max_reloads=self.max_reloads,
                                         order=min_peak_order)
            result = SolveResult(Status.FEASIBLE, mapping.offchip_bytes(self.graph), None, None, mapping.seconds,
                                 solver="cp-sat windows", message=mapping.method)
            mapping = self._no_worse_than(best, result, mapping)
        elif self.solver == "ilp":
            result, mapping = solve_ilp(self.graph, self.scratchpad_bytes, self.time_limit, self.threads, order=order)
            mapping = self._no_worse_than(best, result, mapping)
        else:
            result, mapping = self._solve_cpsat(best, order)
        if mapping is not None:
            mapping.status, mapping.bound, mapping.gap = str(result.status), result.bound, result.gap
        result.solution = mapping
        replay = simulate(self.graph, mapping.to_dict(self.graph)) if mapping is not None else None
        return MappingResult(self, mapping, result, found, replay)

    def _solve_cpsat(self, best: Mapping | None, order: list[str] | None) -> tuple[SolveResult, Mapping | None]:
        relaxed = None
        if (self.lower_bound and mode_allows_bound(self.mode) and len(self.graph.operators) <= MILP_LIMIT
                and best is not None and best.offchip_bytes(self.graph) > 0):
            relaxed = lower_bound(self.graph, self.scratchpad_bytes, self.time_limit / 2, self.threads)
        known = relaxed.bound if relaxed is not None and relaxed.bound else None
        remaining = self.time_limit - (relaxed.seconds if relaxed is not None else 0.0)
        result, found = solve_mapping(self.graph, self.scratchpad_bytes, max(remaining, 0.2 * self.time_limit),
                                      self.max_reloads, self.threads, hint=best, order=order, known_bound=known)
        if relaxed is not None:
            result.seconds += relaxed.seconds
        mapping = self._no_worse_than(best, result, found)
        if known is not None and result.objective is not None and (result.bound is None or known > result.bound):
            result.bound = min(known, result.objective)
            result.gap = relative_gap(result.objective, result.bound)
            result.message += f"; bound from the address-free MILP ({relaxed.status})"
            if result.gap <= 1e-4 and mapping is found:
                result.status = Status.OPTIMAL
        return result, mapping

    def _no_worse_than(self, best: Mapping | None, result: SolveResult, mapping: Mapping | None) -> Mapping | None:
        """``mapping``, or a copy of the best baseline when the solver found none or a worse one
        in time (``result`` then reports the baseline's traffic, with the solver's bound)."""
        if best is None or (mapping is not None
                            and mapping.offchip_bytes(self.graph) <= best.offchip_bytes(self.graph)):
            return mapping
        result.objective = best.offchip_bytes(self.graph)
        result.gap = relative_gap(result.objective, result.bound)
        return replace(best, seconds=result.seconds)


@dataclass
class MappingResult:
    problem: MappingProblem
    mapping: Mapping | None
    solve: SolveResult
    baselines: dict[str, Mapping] = field(default_factory=dict)
    replay: object = None

    @property
    def offchip_bytes(self) -> int | None:
        return None if self.mapping is None else self.mapping.offchip_bytes(self.problem.graph)

    def baseline_bytes(self) -> dict[str, int]:
        return {name: m.offchip_bytes(self.problem.graph) for name, m in self.baselines.items()}

    def to_dict(self) -> dict:
        data = self.mapping.to_dict(self.problem.graph) if self.mapping is not None else {}
        data.update(status=str(self.solve.status), bound=self.solve.bound, gap=self.solve.gap,
                    seconds=self.solve.seconds, baselines=self.baseline_bytes())
        return data
