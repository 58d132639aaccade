"""Solve a :class:`~designer.mapping.problem.MappingProblem`: the baselines, bounds, a
keep-or-spill plan, the chosen strategy, and one result built from them.

1. **Baselines**: every eviction rule on the schedules the mode allows (the graph's order;
   joint and divide also the minimum-peak order).
2. **Forced-liveness bound** (:mod:`designer.mapping.liveness`, every mode, any size, when the
   best baseline moves anything): at most ``LIVENESS_SHARE`` of the time limit.
3. **Keep-or-spill plan** (:mod:`designer.mapping.keep`): the optimal drops of the given order
   (fixed mode) or of the best of the two orders, improved by moving operators (joint, divide),
   laid out; at most ``KEEP_SHARE`` (``KEEP_SHARE_LARGE`` beyond ``MILP_LIMIT`` operators).
4. **Time-indexed bound** (joint mode, CP-SAT, graphs up to ``MILP_LIMIT`` operators, while
   the gap is above ``BOUND_GAP``): the address-free MILP, which sees the order, at most
   ``BOUND_SHARE``.
5. **Window search** (:mod:`designer.mapping.ordercp`): the best mapping so far improved in
   its order, addresses included, a window of steps at a time; ``WINDOW_SHARE`` of the time
   left (``WINDOW_SHARE_LARGE`` on graphs over ``MILP_LIMIT`` operators).
6. **Strategy**: CP-SAT (default) or COSMA's ILP over the whole graph, or divide and conquer
   (``mode="divide"``), each through the registry (:mod:`designer.mapping.strategies`), with
   what is left of the time; CP-SAT starts from the best mapping so far and knows the best
   bound. Skipped when the best mapping already meets the bound (then it is optimal).
7. **Result**, built once: the cheapest mapping any step found (the message says which and
   what the strategy reported); the best bound proven by any model; the simulator's replay.
"""

from __future__ import annotations

import time

from designer.mapping.baselines import all_baselines, greedy_min_peak_order
from designer.mapping.io import Mapping, MappingOutcome
from designer.mapping.problem import MappingProblem, MappingResult
from designer.mapping.simulate import simulate
from designer.mapping.strategies import get as strategy
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


def baselines(problem: MappingProblem, min_peak_order: list[str] | None = None) -> dict[str, Mapping]:
    """Every baseline the mode allows, by name (``order/eviction``)."""
    orders = {"topological": problem.order or problem.graph.topological_order()}
    if problem.mode != "fixed":  # joint and divide choose the schedule: the min-peak order is fair game
        orders["min-peak"] = min_peak_order or greedy_min_peak_order(problem.graph)
    return all_baselines(problem.graph, problem.scratchpad_bytes, orders, problem.objective)


def solve(problem: MappingProblem, min_peak_order: list[str] | None = None) -> MappingResult:
    """See the module docstring."""
    start = time.perf_counter()
    graph, objective, limit = problem.graph, problem.objective, problem.time_limit
    found = baselines(problem, min_peak_order)
    candidates = {f"baseline {name}": mapping for name, mapping in found.items()}
    if problem.start is not None:  # checked valid at this scratchpad by the problem
        candidates[f"given start ({problem.start.method})"] = problem.start
    fixed_order = (problem.order or graph.topological_order()) if problem.mode == "fixed" else None
    common = dict(objective=objective, threads=problem.threads)
    bounds: dict[str, SolveResult] = {}

    def cost(mapping: Mapping) -> int:
        return objective.of_steps(graph, mapping.steps)

    def proven() -> float | None:
        return max((r.bound for r in bounds.values() if r.bound is not None), default=None)

    def open_gap(tolerance: float = 0.0) -> bool:  # the best mapping moves more than the best bound allows
        best = min(map(cost, candidates.values()), default=None)
        return best is None or best > (proven() or 0) * (1 + tolerance)

    if problem.lower_bound and open_gap():
        bounds["forced-liveness bound"] = strategy("liveness")(graph, problem.scratchpad_bytes,
                                                               LIVENESS_SHARE * limit, **common).result
    if open_gap():
        orders = None if fixed_order else [graph.topological_order(), min_peak_order or greedy_min_peak_order(graph)]
        share = KEEP_SHARE_LARGE if len(graph.operators) > MILP_LIMIT else KEEP_SHARE
        keep = strategy("keep")(graph, problem.scratchpad_bytes, share * limit, order=fixed_order,
                                orders=orders, **common)
        if keep.mapping is not None:
            candidates["keep-or-spill plan"] = keep.mapping
        if keep.result.bound is not None:  # fixed mode: a bound for the order
            bounds["keep-or-spill MILP"] = keep.result
    if (problem.lower_bound and problem.mode == "joint" and problem.solver == "cpsat"
            and len(graph.operators) <= MILP_LIMIT and open_gap(BOUND_GAP)):
        bounds["address-free MILP"] = strategy("bound")(graph, problem.scratchpad_bytes, BOUND_SHARE * limit,
                                                        **common).result
    hint = min(candidates.values(), key=cost, default=None)
    if hint is not None and open_gap():
        share = WINDOW_SHARE_LARGE if len(graph.operators) > MILP_LIMIT else WINDOW_SHARE
        windows = strategy("windows")(graph, problem.scratchpad_bytes,
                                      share * max(0.0, limit - (time.perf_counter() - start)), incumbent=hint,
                                      **common)
        candidates["window search"] = windows.mapping
        hint = min(candidates.values(), key=cost)
    remaining = max(limit - (time.perf_counter() - start), MIN_SOLVER_SHARE * limit)
    if not open_gap():
        outcome = None
    elif problem.mode == "divide":
        outcome = strategy("divide")(graph, problem.scratchpad_bytes, remaining, objective=objective,
                                     window=problem.window, seconds_per_window=problem.seconds_per_window,
                                     max_reloads=problem.max_reloads, order=min_peak_order)
    elif problem.solver == "ilp":
        outcome = strategy("ilp")(graph, problem.scratchpad_bytes, remaining, order=fixed_order, **common)
    else:
        outcome = strategy("cpsat")(graph, problem.scratchpad_bytes, remaining, max_reloads=problem.max_reloads,
                                    hint=hint, order=fixed_order, known_bound=proven(), **common)
    return _result(problem, outcome, bounds, candidates, found, time.perf_counter() - start)


def _result(problem: MappingProblem, outcome: MappingOutcome | None, bounds: dict[str, SolveResult],
            candidates: dict[str, Mapping], found: dict[str, Mapping], seconds: float) -> MappingResult:
    graph, objective = problem.graph, problem.objective
    own = outcome.result if outcome is not None else None
    if outcome is not None and outcome.mapping is not None:
        candidates = {own.solver: outcome.mapping, **candidates}  # the strategy's wins ties
    method = min(candidates, key=lambda name: objective.of_steps(graph, candidates[name].steps), default=None)
    mapping = candidates.get(method)
    value = None if mapping is None else objective.of_steps(graph, mapping.steps)
    if own is None:
        message = f"{method}; it meets the best bound, so no solver ran" if value else f"{method}; it moves nothing"
    elif own.solver == method:
        message = own.message
    else:
        what = "nothing" if outcome.mapping is None else "nothing better"
        message = f"{method}; {own.solver} found {what} in {own.seconds:.0f} s (its status: {own.status})"
    proven = {name: r.bound for name, r in [*bounds.items(), ("solver", own)] if r is not None and r.bound is not None}
    bound_by = max(proven, key=proven.get, default=None)
    best_bound = None if bound_by is None or value is None else min(proven[bound_by], value)
    if value == 0:  # nothing moves: no mapping costs less
        best_bound = 0
    if bound_by is not None and bound_by != "solver":
        message += f"; bound from the {bound_by} ({bounds[bound_by].status})"
    gap = relative_gap(value, best_bound)
    if value is None:
        status = own.status if own is not None else Status.NO_SOLUTION
    elif gap is not None and gap <= 1e-4:
        status = Status.OPTIMAL
    else:
        status = Status.FEASIBLE
    result = SolveResult(status, objective=value, bound=best_bound, gap=gap, seconds=seconds, solver=method or "none",
                         message=message, model_size=own.model_size if own is not None else None)
    replay = simulate(graph, mapping.to_dict(graph, result)) if mapping is not None else None
    bound_result = next((r for name, r in bounds.items() if name == bound_by), None)
    return MappingResult(problem, mapping, result, own, bound_result, found, replay)
