"""Solve a :class:`~designer.mapping.problem.MappingProblem`: the baselines, bounds, a
keep-or-spill plan, the chosen strategy, and one result built from them.

1. **Baselines**: every eviction rule on the schedules the order allows (the graph's order;
   a free order also the minimum-peak order).
2. **Forced-liveness bound** (:mod:`designer.mapping.bounds.liveness`, any strategy, any size, when the
   best baseline moves anything): at most ``LIVENESS_SHARE`` of the time limit.
3. **Keep-or-spill plan** (:mod:`designer.mapping.strategies.keep`): the optimal drops of the given order
   (a given order) or of the best of the two orders, improved by moving operators (a free order),
   laid out; at most ``KEEP_SHARE`` (``KEEP_SHARE_LARGE`` beyond ``MILP_LIMIT`` operators).
4. **Time-indexed bound** (free order, strategy cpsat, graphs up to ``MILP_LIMIT`` operators, while
   the gap is above ``BOUND_GAP``): the address-free MILP, which sees the order, at most
   ``BOUND_SHARE``.
5. **Window search** (:mod:`designer.mapping.strategies.windows`): the best mapping so far improved in
   its order, addresses included, a window of steps at a time; ``WINDOW_SHARE`` of the time
   left (``WINDOW_SHARE_LARGE`` on graphs over ``MILP_LIMIT`` operators).
6. **Strategy** (:mod:`designer.mapping.strategies`): CP-SAT (the default) or COSMA's ILP over
   the whole graph, divide and conquer, or the window search, keep-or-spill plan or baselines
   alone, with what is left of the time; CP-SAT starts from the best mapping so far and knows
   the best bound. Skipped when the best mapping already meets the bound (then it is optimal).
7. **Result**, built once: the cheapest mapping any step found (the message says which and
   what the strategy reported); the best bound proven by any model; the simulator's replay.
"""

from __future__ import annotations

import time

from designer.mapping.strategies.baselines import all_baselines, greedy_min_peak_order
from designer.mapping.bounds.milp import lower_bound
from designer.mapping.core.io import Mapping, MappingOutcome
from designer.mapping.strategies.keep import keep_plan
from designer.mapping.bounds.liveness import liveness_bound
from designer.mapping.problem import MappingProblem
from designer.mapping.result import MappingResult
from designer.mapping.strategies import STRATEGIES, Start, Strategy
from designer.mapping.core.simulate import simulate
from designer.mapping.strategies.windows import window_search
from solvers.result import SolveResult, Status, relative_gap


MILP_LIMIT = 200  # operators up to which the time-indexed bound is computed (larger: weak, slow, 1 GB at 250)
LIVENESS_SHARE = 0.1  # of the time limit, at most, for the forced-liveness bound
KEEP_SHARE = 0.25  # ... for the keep-or-spill plan (KEEP_SHARE_LARGE on graphs over MILP_LIMIT operators, whose
KEEP_SHARE_LARGE = 0.15  # random-layered plans fragment past use while the window search keeps improving)
BOUND_SHARE = 0.2  # ... for the time-indexed bound
BOUND_GAP = 0.02  # the time-indexed bound runs only while the gap is above this (it rarely beats liveness)
WINDOW_SHARE = 0.3  # of the time left then, for the window search from the best mapping so far
WINDOW_SHARE_LARGE = 0.9  # ... on graphs over MILP_LIMIT operators, where CP-SAT's whole model rarely improves
MIN_SOLVER_SHARE = 0.05  # of the time limit, at least, for the strategy (the total stays near the limit)
# A stage builds its model before its time limit can stop it, and on large graphs that build
# costs about as much as the baselines (measured on EfficientNet-B0's 674-operator training
# graph: baselines 1.5 s, forced-liveness bound 1.5 s, keep-or-spill plan 2.8 s; a 10-s map
# ended at 16.6 s). So a stage starts only while this many times the baselines' seconds is left:
LIVENESS_COST, KEEP_COST, BOUND_COST, WINDOW_COST, STRATEGY_COST = 1.0, 2.0, 1.0, 0.5, 1.0
FINISH_COST = 1.0  # kept back from every stage for the result's replay by the simulator and its report


def baselines(problem: MappingProblem) -> dict[str, Mapping]:
    """Every baseline the order allows, by name (``order/eviction``)."""
    orders = {"topological": problem.fixed_order or problem.graph.topological_order()}
    if problem.fixed_order is None:  # a free order: the min-peak order is fair game
        orders["min-peak"] = problem.min_peak_order or greedy_min_peak_order(problem.graph)
    return all_baselines(problem.graph, problem.scratchpad_bytes, orders, problem.objective)


class _Search:
    """The mappings and bounds found so far, stage by stage, within one time limit."""

    def __init__(self, problem: MappingProblem, time_limit: float, progress=None):
        self.problem, self.limit, self.begun = problem, time_limit, time.perf_counter()
        self.graph, self.objective = problem.graph, problem.objective
        self.found = baselines(problem)
        self.unit = time.perf_counter() - self.begun  # the baselines' seconds: the yardstick of a stage's build
        self.candidates = {f"baseline {name}": mapping for name, mapping in self.found.items()}
        if problem.start is not None:  # checked valid at this scratchpad by the problem
            self.candidates[f"given start ({problem.start.method})"] = problem.start
        self.bounds: dict[str, SolveResult] = {}
        self.common = dict(objective=problem.objective, threads=problem.threads)
        self.large = len(self.graph.operators) > MILP_LIMIT
        self.progress = progress
        self.report("baselines")

    def report(self, stage: str) -> None:
        """Tell ``progress`` the stage just done, the best mapping's cost and the best bound so far."""
        if self.progress is not None:
            best = self.best()
            self.progress({"stage": stage, "seconds": time.perf_counter() - self.begun,
                           "best": None if best is None else self.cost(best), "bound": self.proven()})

    def cost(self, mapping: Mapping) -> int:
        return self.objective.of_steps(self.graph, mapping.steps)

    def best(self) -> Mapping | None:
        return min(self.candidates.values(), key=self.cost, default=None)

    def proven(self) -> float | None:
        return max((r.bound for r in self.bounds.values() if r.bound is not None), default=None)

    def open_gap(self, tolerance: float = 0.0) -> bool:
        """The best mapping moves more than the best bound allows."""
        best = self.best()
        return best is None or self.cost(best) > (self.proven() or 0) * (1 + tolerance)

    def left(self) -> float:
        """Seconds left for stages: the limit less what is spent and what the result will take."""
        return max(0.0, self.limit - FINISH_COST * self.unit - (time.perf_counter() - self.begun))

    def affords(self, cost: float) -> bool:
        """Whether ``cost`` times the baselines' seconds is left (see STRATEGY_COST)."""
        return self.left() >= cost * self.unit and self.left() > 0

    def liveness(self) -> None:
        if self.problem.lower_bound and self.open_gap() and self.affords(LIVENESS_COST):
            self.bounds["forced-liveness bound"] = liveness_bound(
                self.graph, self.problem.scratchpad_bytes, min(LIVENESS_SHARE * self.limit, self.left()),
                **self.common).result
            self.report("forced-liveness bound")

    def keep(self, share: float) -> MappingOutcome | None:
        if not self.open_gap() or not self.affords(KEEP_COST):
            return None
        fixed = self.problem.fixed_order
        orders = None if fixed else [self.graph.topological_order(), self.problem.min_peak_order]
        keep = keep_plan(self.graph, self.problem.scratchpad_bytes, min(share * self.limit, self.left()), order=fixed,
                         orders=orders, **self.common)
        if keep.mapping is not None:
            self.candidates["keep-or-spill plan"] = keep.mapping
        if keep.result.bound is not None:  # a given order: a bound for the order
            self.bounds["keep-or-spill MILP"] = keep.result
        self.report("keep-or-spill plan")
        return keep

    def address_free_bound(self) -> None:
        if (self.problem.lower_bound and self.problem.fixed_order is None
                and not self.large and self.open_gap(BOUND_GAP) and self.affords(BOUND_COST)):
            self.bounds["address-free MILP"] = lower_bound(self.graph, self.problem.scratchpad_bytes,
                                                           min(BOUND_SHARE * self.limit, self.left()),
                                                           **self.common).result
            self.report("address-free bound")

    def windows(self, share: float) -> MappingOutcome | None:
        hint = self.best()
        if hint is None or not self.open_gap() or not self.affords(WINDOW_COST):
            return None
        found = window_search(self.graph, self.problem.scratchpad_bytes, share * self.left(), incumbent=hint,
                              **self.common)
        self.candidates["window search"] = found.mapping
        self.report("window search")
        return found


def solve(problem: MappingProblem, progress=None, time_limit: float | None = None) -> MappingResult:
    """See the module docstring: within what is left of the problem's time limit after its
    budgets' search (``time_limit``: another limit for all of it). ``progress(event)`` hears each
    stage as it ends: {stage, seconds, best, bound}."""
    if time_limit is None:
        time_limit = max(problem.time_limit - problem.budget_seconds, 0.1 * problem.time_limit)
    search = _Search(problem, time_limit, progress)
    strategy = STRATEGIES[problem.strategy]
    outcomes: dict[str, MappingOutcome | None] = {}
    search.liveness()
    if strategy.keep != "skip":  # "all": the strategy is this stage; "share": its share of the time
        outcomes["keep"] = search.keep(1.0 if strategy.keep == "all" else
                                       KEEP_SHARE_LARGE if search.large else KEEP_SHARE)
    if strategy.bound:
        search.address_free_bound()
    if strategy.windows != "skip":
        outcomes["windows"] = search.windows(1.0 if strategy.windows == "all" else
                                             WINDOW_SHARE_LARGE if search.large else WINDOW_SHARE)
    outcome = outcomes.get(strategy.outcome)
    if strategy.outcome == "run" and search.open_gap():
        outcome = _run(search, strategy)
    elif strategy.outcome == "baseline" and search.open_gap():
        outcome = _baseline_outcome(search)
    return _result(search, outcome, time.perf_counter() - search.begun)


def _run(search: _Search, strategy: Strategy) -> MappingOutcome:
    """The whole-graph strategy with the time left, from the best mapping so far, if building
    its model fits in what is left (said, not run, otherwise)."""
    if not search.affords(STRATEGY_COST):  # its model alone would outlast the limit
        return MappingOutcome(None, SolveResult(
            Status.NO_SOLUTION, seconds=0.0, solver=strategy.name,
            message=f"{strategy.name}: not run, {search.left():.1f} s left of {search.limit:.1f} s, less than building "
                    f"its model takes on this graph"))
    seconds = max(search.left() - STRATEGY_COST * search.unit, MIN_SOLVER_SHARE * search.limit)
    start = Start(search.problem, search.best(), search.proven())
    return strategy.run(search.graph, search.problem.scratchpad_bytes, seconds, start, **search.common)


def _baseline_outcome(search: _Search) -> MappingOutcome:
    """The baselines' own report (they ran first, with every other candidate)."""
    name, best = min(((n, m) for n, m in search.candidates.items() if n.startswith("baseline")),
                     key=lambda item: search.cost(item[1]))
    return MappingOutcome(best, SolveResult(Status.FEASIBLE, objective=search.cost(best), seconds=0.0,
                                            solver=name, message=f"{name}: the cheapest baseline"))


def _result(search: _Search, outcome: MappingOutcome | None, seconds: float) -> MappingResult:
    problem, graph, objective, bounds = search.problem, search.graph, search.objective, search.bounds
    candidates = dict(search.candidates)
    own = outcome.result if outcome is not None else None
    if outcome is not None and outcome.mapping is not None:
        candidates = {own.solver: outcome.mapping, **candidates}  # the strategy's wins ties
    method = min(candidates, key=lambda name: search.cost(candidates[name]), default=None)
    mapping = candidates.get(method)
    value = None if mapping is None else search.cost(mapping)
    proven = {name: r.bound for name, r in [*bounds.items(), ("solver", own)] if r is not None and r.bound is not None}
    bound_by = max(proven, key=proven.get, default=None)
    best_bound = None if bound_by is None or value is None else min(proven[bound_by], value)
    if value == 0:  # nothing moves: no mapping costs less
        best_bound = 0
    message = _message(method, value, outcome)
    if bound_by is not None and bound_by != "solver":
        message += f"; bound from the {bound_by} ({bounds[bound_by].status})"
    gap = relative_gap(value, best_bound)
    if value is None:
        status = own.status if own is not None else Status.NO_SOLUTION
    else:
        status = Status.OPTIMAL if gap is not None and gap <= 1e-4 else Status.FEASIBLE
    result = SolveResult(status, objective=value, bound=best_bound, gap=gap, seconds=seconds, solver=method or "none",
                         message=message, model_size=own.model_size if own is not None else None)
    replay = simulate(graph, mapping.to_dict(graph, result), objective=objective) if mapping is not None else None
    bound_result = next((r for name, r in bounds.items() if name == bound_by), None)
    return MappingResult(problem, mapping, result, own, bound_result, search.found, replay)


def _message(method: str | None, value: int | None, outcome: MappingOutcome | None) -> str:
    own = outcome.result if outcome is not None else None
    if own is None:
        return f"{method}; it meets the best bound, so no strategy ran" if value else f"{method}; it moves nothing"
    if own.solver == method:
        return own.message
    if outcome.mapping is None and "not run" in own.message:
        return f"{method}; {own.message}"
    what = "nothing" if outcome.mapping is None else "nothing better"
    return f"{method}; {own.solver} found {what} in {own.seconds:.0f} s (its status: {own.status})"
