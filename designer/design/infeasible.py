"""Why a design problem has no design, once the solver proved it: the budgets that cannot be
met even alone (with effectiveness and the space's rules), each with its smallest value there,
or that they cannot be met together. Budgets below their minimum in the space alone are named
before any solve, by arithmetic (:mod:`designer.design.minimum`)."""

from __future__ import annotations

import dataclasses
import math

from designer.deadline import Deadline
from designer.design.cells import initial_cells, solve_cells
from designer.design.milp import stage_data
from designer.design.problem import DesignProblem
from solvers.result import Status


def explain_infeasible(problem: DesignProblem, threads: int = 1, time_limit: float = 30.0) -> str:
    """Why the solver proved ``problem`` infeasible: the budgets that cannot be met even alone
    (with effectiveness and the space's rules), each with its smallest value there (one
    minimising MILP per budget, all within ``time_limit`` seconds), or that they cannot be met
    together. Budgets below their minimum in the space alone were already named by
    :func:`~designer.design.minimum.check_minima` before the solve."""
    compute, size = problem.budget_names
    budgets = [("macs", "max_macs", compute), ("params", "max_params", size),
               ("layers", "max_layers", "layers"), ("latency", "max_latency_ms", "modelled milliseconds")]
    cells = initial_cells(problem)
    for j in range(1, problem.n_stages + 1):
        if not stage_data(problem, j, cells.out[j - 1], cells.btn[j - 1]).configs:
            return (f"max_activation_bytes: {problem.max_activation_bytes:g} bytes: no block of stage {j} fits it "
                    f"(the footprint of its first block's layers at the narrowest widths exceeds the budget)")
    deadline = Deadline.starting_now(time_limit)
    given = [field for _, field, _ in budgets if getattr(problem, field) is not None]
    found, unsettled = [], []
    for objective, field, label in budgets:
        limit = getattr(problem, field)
        if limit is None:
            continue
        remaining = deadline.left()
        if remaining <= 0.05:
            unsettled.append(field)
            continue
        others = {other: None for other in given if other != field}
        if "max_latency_ms" in others:  # the budget and its model go together
            others["latency_profile"] = None
        alone = dataclasses.replace(problem, **others)
        result, choice = solve_cells(alone, initial_cells(alone), remaining, 1e-6, threads, objective=objective)
        if result.bound is not None and result.bound > limit:
            # the minimum over cells is exact when it picked single widths, else a lower bound
            exact = result.status == Status.OPTIMAL and choice is not None and choice.stem.is_point and all(
                cfg.out.is_point and cfg.btn.is_point for cfg, _ in choice.stages)
            smallest = f"{result.bound:.4g}" if objective == "latency" else f"{math.ceil(result.bound - 1e-6):,}"
            found.append(f"{field}: the {label} budget {limit:g} cannot be met: with the effectiveness budget, the "
                         f"smallest {label} any design in the space can have is {'' if exact else 'at least '}"
                         f"{smallest}")
        elif result.status != Status.OPTIMAL:
            unsettled.append(field)
    if found:
        return "; ".join(found)
    if unsettled:
        return (f"the budgets cannot all be met together (proven by the solver); whether {', '.join(unsettled)} "
                f"alone can was not settled in the time limit")
    return ("the budgets cannot all be met together (proven by the solver), though each alone can: relax several "
            "at once, or the effectiveness budget")
