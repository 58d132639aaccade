"""Solve a :class:`~designer.mapping.problem.MappingProblem`: the baselines, a bound, the
chosen strategy, and one result built from them.

1. **Baselines**: every eviction rule on the schedules the mode allows (the graph's order;
   joint and divide also the minimum-peak order). The best one warm-starts CP-SAT.
2. **Bound** (joint mode, CP-SAT, graphs up to ``MILP_LIMIT`` operators, when the best baseline
   moves anything): the address-free MILP, for at most half the time limit; its proven bound is
   given to CP-SAT so it can stop once it reaches it.
3. **Strategy**: CP-SAT (default) or COSMA's ILP over the whole graph, or divide and conquer
   (``mode="divide"``), each through the registry (:mod:`designer.mapping.strategies`).
4. **Result**, built once: the strategy's mapping, or the best baseline when the strategy found
   none or a costlier one in time (the result then says so and keeps the strategy's own
   report beside it); the best bound proven by any model; the simulator's replay.
"""

from __future__ import annotations

import time

from designer.mapping.baselines import all_baselines, greedy_min_peak_order
from designer.mapping.io import Mapping, MappingOutcome
from designer.mapping.problem import MappingProblem, MappingResult
from designer.mapping.simulate import simulate
from designer.mapping.strategies import get as strategy
from solvers.result import SolveResult, Status, relative_gap

MILP_LIMIT = 400  # operators up to which the address-free MILP bound is computed (see benchmarks/README.md)
BOUND_SHARE = 0.5  # of the time limit, at most, for the address-free bound
MIN_SOLVER_SHARE = 0.05  # of the time limit, at least, for CP-SAT after the bound (the total stays near the limit)


def baselines(problem: MappingProblem, min_peak_order: list[str] | None = None) -> dict[str, Mapping]:
    """Every baseline the mode allows, by name (``order/eviction``)."""
    orders = {"topological": problem.order or problem.graph.topological_order()}
    if problem.mode != "fixed":  # joint and divide choose the schedule: the min-peak order is fair game
        orders["min-peak"] = min_peak_order or greedy_min_peak_order(problem.graph)
    return all_baselines(problem.graph, problem.scratchpad_bytes, orders, problem.objective)


def solve(problem: MappingProblem, min_peak_order: list[str] | None = None) -> MappingResult:
    """See the module docstring."""
    start = time.perf_counter()
    graph, objective = problem.graph, problem.objective
    found = baselines(problem, min_peak_order)
    best_name = min(found, key=lambda name: objective.of_steps(graph, found[name].steps), default=None)
    best = found.get(best_name)
    fixed_order = (problem.order or graph.topological_order()) if problem.mode == "fixed" else None
    common = dict(objective=objective, threads=problem.threads)
    bound = None
    if problem.mode == "divide":
        outcome = strategy("divide")(graph, problem.scratchpad_bytes, problem.time_limit, objective=objective,
                                     window=problem.window, seconds_per_window=problem.seconds_per_window,
                                     max_reloads=problem.max_reloads, order=min_peak_order)
    elif problem.solver == "ilp":
        outcome = strategy("ilp")(graph, problem.scratchpad_bytes, problem.time_limit, order=fixed_order, **common)
    else:
        if (problem.lower_bound and problem.mode == "joint" and len(graph.operators) <= MILP_LIMIT
                and best is not None and objective.of_steps(graph, best.steps) > 0):
            bound = strategy("bound")(graph, problem.scratchpad_bytes, BOUND_SHARE * problem.time_limit, **common)
        known = bound.result.bound if bound is not None and bound.result.bound else None
        remaining = max(problem.time_limit - (time.perf_counter() - start), MIN_SOLVER_SHARE * problem.time_limit)
        outcome = strategy("cpsat")(graph, problem.scratchpad_bytes, remaining, max_reloads=problem.max_reloads,
                                    hint=best, order=fixed_order, known_bound=known, **common)
    return _result(problem, outcome, bound, found, best_name, time.perf_counter() - start)


def _result(problem: MappingProblem, outcome: MappingOutcome, bound: MappingOutcome | None,
            found: dict[str, Mapping], best_name: str | None, seconds: float) -> MappingResult:
    graph, objective = problem.graph, problem.objective
    own = outcome.result
    mapping, method, message = outcome.mapping, own.solver, own.message
    best = found.get(best_name)
    if best is not None and (mapping is None or objective.of_steps(graph, best.steps)
                             < objective.of_steps(graph, mapping.steps)):
        what = "nothing" if mapping is None else "nothing better"
        mapping, method = best, f"baseline {best_name}"
        message = f"best baseline ({best_name}); {own.solver} found {what} in {own.seconds:.0f} s (its status: " \
                  f"{own.status})"
    value = None if mapping is None else objective.of_steps(graph, mapping.steps)
    proven = [r.bound for r in (own, bound.result if bound is not None else None)
              if r is not None and r.bound is not None]
    best_bound = None if not proven or value is None else min(max(proven), value)
    if bound is not None and bound.result.bound is not None and (own.bound is None or bound.result.bound > own.bound):
        message += f"; bound from the address-free MILP ({bound.result.status})"
    gap = relative_gap(value, best_bound)
    if value is None:
        status = own.status
    elif gap is not None and gap <= 1e-4:
        status = Status.OPTIMAL
    else:
        status = Status.FEASIBLE
    result = SolveResult(status, objective=value, bound=best_bound, gap=gap, seconds=seconds, solver=method,
                         message=message, model_size=own.model_size)
    replay = simulate(graph, mapping.to_dict(graph, result)) if mapping is not None else None
    return MappingResult(problem, mapping, result, own, None if bound is None else bound.result, found, replay)
