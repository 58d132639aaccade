import itertools
import random

import pytest

from solvers.knapsack import solve_dp, solve_lagrangian
from solvers.result import Status


def random_instance(seed: int, groups: int = 4, options: int = 4):
    rng = random.Random(seed)
    costs = [[rng.randint(0, 30) for _ in range(options)] for _ in range(groups)]
    losses = [[rng.random() for _ in range(options)] for _ in range(groups)]
    budget = rng.randint(sum(min(c) for c in costs), sum(max(c) for c in costs))
    return costs, losses, budget


def brute_force(costs, losses, budget):
    best = None
    for picks in itertools.product(*[range(len(c)) for c in costs]):
        if sum(c[i] for c, i in zip(costs, picks)) <= budget:
            value = sum(d[i] for d, i in zip(losses, picks))
            best = value if best is None or value < best else best
    return best


@pytest.mark.parametrize("seed", range(40))
def test_exact_dp_equals_brute_force(seed):
    costs, losses, budget = random_instance(seed)
    result = solve_dp(costs, losses, budget, bins=None)
    assert result.status == Status.OPTIMAL
    assert result.objective == pytest.approx(brute_force(costs, losses, budget))
    assert sum(c[i] for c, i in zip(costs, result.solution)) <= budget


@pytest.mark.parametrize("seed", range(40))
def test_binned_dp_meets_the_budget_and_its_error_bound(seed):
    costs, losses, budget = random_instance(seed, groups=5, options=6)
    bins = 16
    result = solve_dp(costs, losses, budget, bins=bins)
    assert sum(c[i] for c, i in zip(costs, result.solution)) <= budget  # always feasible
    assert result.objective >= brute_force(costs, losses, budget) - 1e-12
    # never worse than the exact optimum for the budget less one bin per group
    reduced = budget - len(costs) * budget / bins
    if reduced >= sum(min(c) for c in costs):
        assert result.objective <= brute_force(costs, losses, reduced) + 1e-12


@pytest.mark.parametrize("seed", range(20))
def test_lagrangian_is_feasible_and_no_better_than_optimal(seed):
    costs, losses, budget = random_instance(seed)
    result = solve_lagrangian(costs, losses, budget)
    assert sum(c[i] for c, i in zip(costs, result.solution)) <= budget
    assert result.objective >= brute_force(costs, losses, budget) - 1e-12


def test_infeasible_budget_is_reported():
    result = solve_dp([[5, 6], [7]], [[0, 0], [0]], 11, bins=None)
    assert result.status == Status.INFEASIBLE and "12" in result.message


@pytest.mark.parametrize("args, message", [
    (([[1]], [[1, 2]], 3), "same, non-zero number"),
    (([[1]], [[1]], -1), "budget"),
    (([[-1]], [[1]], 3), "non-negative"),
])
def test_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        solve_dp(*args)
