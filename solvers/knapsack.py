r"""Multiple-choice knapsack: pick one option per group, minimise the summed loss under a budget.

    minimise   sum_g loss[g][i_g]
    subject to sum_g cost[g][i_g] <= budget,   one option i_g per group g

This is the allocation step of rate-distortion pruning (a group is a layer, an option a
sparsity, the loss its distortion, the cost its kept weights or MACs), but it knows nothing of
networks.

:func:`solve_dp` runs the dynamic program over a *binned* budget: each cost is rounded **up**
to a multiple of ``bin_size`` (budget / ``bins``), so every returned choice meets the real
budget. Its worst case: the result is at least as good as the exact optimum for the budget
reduced by ``groups * bin_size`` (each group's rounding wastes less than one bin); what the
rounding left of the real budget is then spent greedily (:func:`spend_slack`). With
``bins=None`` the state is the exact integer cost (costs must then be integers; for small
problems). Time O(groups x options x bins), memory O(groups x bins) for the choices kept for
backtracking.

:func:`solve_lagrangian` is the slope variant: for a multiplier lambda each group picks
argmin loss + lambda * cost, and lambda is bisected to the smallest value that meets the
budget. It only reaches allocations on the lower convex hull of each group's options.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from solvers.result import SolveResult, Status


def _validate(costs: Sequence[Sequence[float]], losses: Sequence[Sequence[float]], budget: float) -> None:
    if len(costs) != len(losses) or not costs:
        raise ValueError(f"costs and losses: need one list per group, got {len(costs)} and {len(losses)}")
    for g, (c, d) in enumerate(zip(costs, losses)):
        if len(c) != len(d) or not c:
            raise ValueError(f"group {g}: costs and losses need the same, non-zero number of options")
        if min(c) < 0:
            raise ValueError(f"group {g}: costs must be non-negative")
    if budget < 0:
        raise ValueError(f"budget: must be non-negative, got {budget}")


def _infeasible(costs, budget: float, start: float, solver: str) -> SolveResult:
    smallest = sum(min(c) for c in costs)
    return SolveResult(Status.INFEASIBLE, seconds=time.perf_counter() - start, solver=solver,
                       message=f"budget {budget:g} is below the smallest total cost {smallest:g}")


def solve_dp(costs: Sequence[Sequence[float]], losses: Sequence[Sequence[float]], budget: float,
             bins: int | None = 10_000) -> SolveResult:
    """Optimal choice per group (``solution``: a list of option indices) by dynamic programming."""
    _validate(costs, losses, budget)
    start = time.perf_counter()
    if sum(min(c) for c in costs) > budget:
        return _infeasible(costs, budget, start, "knapsack-dp")
    if bins is None:
        if any(float(x) != int(x) for c in costs for x in c) or float(budget) != int(budget):
            raise ValueError("bins=None (exact state) needs integer costs and budget")
        bin_size, n_bins = 1.0, int(budget)
    else:
        if bins < 1:
            raise ValueError(f"bins: must be at least 1, got {bins}")
        bin_size, n_bins = max(budget / bins, 1e-12), bins
    width = n_bins + 1
    best = np.zeros(width)  # best[b]: least loss with binned cost <= b (groups so far)
    choices = np.empty((len(costs), width), dtype=np.int32)
    for g, (group_costs, group_losses) in enumerate(zip(costs, losses)):
        binned = np.ceil(np.asarray(group_costs, dtype=float) / bin_size - 1e-9).astype(np.int64)
        new = np.full(width, np.inf)
        pick = np.full(width, -1, dtype=np.int32)
        for option, (shift, loss) in enumerate(zip(binned, group_losses)):
            if shift > n_bins:
                continue
            candidate = np.full(width, np.inf)
            candidate[shift:] = best[:width - shift] + loss
            better = candidate < new
            new[better] = candidate[better]
            pick[better] = option
        best, choices[g] = new, pick
    if not np.isfinite(best[n_bins]):
        if bins is None:
            return _infeasible(costs, budget, start, "knapsack-dp")
        # the real costs fit (checked above) but their rounding up to bins does not (a budget at or
        # near the cheapest total): start from each group's cheapest option and spend what is left
        cheapest = [int(np.argmin(c)) for c in costs]
        solution = spend_slack(costs, losses, budget, cheapest)
        return SolveResult(Status.FEASIBLE, objective=float(sum(losses[g][i] for g, i in enumerate(solution))),
                           seconds=time.perf_counter() - start, solution=solution, solver="knapsack-dp",
                           message=f"binned: {n_bins} bins of {bin_size:g} leave no room under the budget; each group's "
                                   f"cheapest option, then the slack spent greedily",
                           model_size={"groups": len(costs), "bins": width, "options": sum(len(c) for c in costs)})
    solution, b = [], n_bins
    for g in range(len(costs) - 1, -1, -1):
        option = int(choices[g, b])
        solution.append(option)
        b -= int(np.ceil(costs[g][option] / bin_size - 1e-9))
    solution.reverse()
    if bins is not None:
        solution = spend_slack(costs, losses, budget, solution)
    objective = float(sum(losses[g][i] for g, i in enumerate(solution)))
    exact = bins is None
    return SolveResult(Status.OPTIMAL if exact else Status.FEASIBLE, objective=objective,
                       bound=objective if exact else None, gap=0.0 if exact else None,
                       seconds=time.perf_counter() - start, solution=solution, solver="knapsack-dp",
                       message="exact integer state" if exact else
                       f"binned: {n_bins} bins of {bin_size:g}; optimal for the budget less at most "
                       f"{len(costs) * bin_size:g}",
                       model_size={"groups": len(costs), "bins": width,
                                   "options": sum(len(c) for c in costs)})


def spend_slack(costs: Sequence[Sequence[float]], losses: Sequence[Sequence[float]], budget: float,
                solution: list[int]) -> list[int]:
    """Spend what the binned DP's rounding left of the *real* budget: repeatedly move the group
    whose move to another option lowers the loss most per extra unit of cost (at equal loss,
    the costlier option), while the real total stays within the budget. Never worse than ``solution``; with a budget that admits
    every group's costliest option it reaches them (a zero-sparsity target removes nothing)."""
    solution = list(solution)
    spare = budget - sum(costs[g][i] for g, i in enumerate(solution))
    while True:
        best = None
        for g, (group_costs, group_losses) in enumerate(zip(costs, losses)):
            here_cost, here_loss = group_costs[solution[g]], group_losses[solution[g]]
            for option, (cost, loss) in enumerate(zip(group_costs, group_losses)):
                extra, gain = cost - here_cost, here_loss - loss
                # a move lowers the loss, or keeps it and spends budget (keeps more at equal loss)
                if extra > spare or gain < 0 or (gain == 0 and extra <= 0):
                    continue
                rate = gain / extra if extra > 0 else math.inf
                if best is None or rate > best[0]:
                    best = (rate, g, option, extra)
        if best is None:
            return solution
        _, g, option, extra = best
        solution[g] = option
        spare -= extra


def solve_lagrangian(costs: Sequence[Sequence[float]], losses: Sequence[Sequence[float]], budget: float,
                     iterations: int = 100) -> SolveResult:
    """The slope (Lagrangian) allocation: a convex-hull point meeting the budget."""
    _validate(costs, losses, budget)
    start = time.perf_counter()
    if sum(min(c) for c in costs) > budget:
        return _infeasible(costs, budget, start, "knapsack-lagrangian")
    cost_arrays = [np.asarray(c, dtype=float) for c in costs]
    loss_arrays = [np.asarray(d, dtype=float) for d in losses]

    def pick(lam: float) -> tuple[list[int], float]:
        chosen = []
        for c, d in zip(cost_arrays, loss_arrays):
            value = d + lam * c
            ties = np.flatnonzero(value <= value.min() + 1e-12 * max(1.0, abs(value.min())))
            chosen.append(int(ties[np.argmin(c[ties])]))  # the cheapest among ties
        return chosen, float(sum(c[i] for c, i in zip(cost_arrays, chosen)))

    low, high = 0.0, 1.0
    chosen, total = pick(low)
    if total > budget:
        while pick(high)[1] > budget:
            high *= 2
            if high > 1e300:
                break
        for _ in range(iterations):
            middle = 0.5 * (low + high)
            if pick(middle)[1] > budget:
                low = middle
            else:
                high = middle
        chosen, total = pick(high)
    objective = float(sum(d[i] for d, i in zip(loss_arrays, chosen)))
    return SolveResult(Status.FEASIBLE, objective=objective, seconds=time.perf_counter() - start,
                       solution=chosen, solver="knapsack-lagrangian",
                       message=f"total cost {total:g} of budget {budget:g}",
                       model_size={"groups": len(costs), "options": sum(len(c) for c in costs)})
