import pyomo.environ as pyo
import pytest

from solvers.highs import solve
from solvers.result import Status


def knapsack(n: int, integer: bool = True) -> pyo.ConcreteModel:
    """A multi-dimensional knapsack; brute force checks the small one."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(range(n), domain=pyo.Binary if integer else pyo.UnitInterval)
    m.value = pyo.Objective(expr=sum(((i * 37) % 101 + 1) * m.x[i] for i in range(n)), sense=pyo.maximize)
    m.capacity = pyo.ConstraintList()
    for j in range(20):
        m.capacity.add(sum(((i * j * 13 + 7) % 97 + 1) * m.x[i] for i in range(n)) <= 60 * n // 4 + j)
    return m


def brute_force(n: int) -> float:
    best = 0
    for mask in range(1 << n):
        chosen = [i for i in range(n) if mask >> i & 1]
        if all(sum((i * j * 13 + 7) % 97 + 1 for i in chosen) <= 60 * n // 4 + j for j in range(20)):
            best = max(best, sum((i * 37) % 101 + 1 for i in chosen))
    return best


def test_optimal_matches_brute_force():
    model = knapsack(12)
    result = solve(model, rel_gap=0.0)
    assert result.status == Status.OPTIMAL
    assert result.objective == pytest.approx(brute_force(12))
    assert result.bound == pytest.approx(result.objective)
    assert result.gap == pytest.approx(0.0)
    assert pyo.value(model.value) == pytest.approx(result.objective)  # the incumbent is loaded
    assert result.model_size == {"variables": 12, "integer_variables": 12, "constraints": 20}


def test_time_limit_returns_the_incumbent_and_its_gap():
    model = knapsack(400)
    result = solve(model, time_limit=0.2, rel_gap=0.0)
    assert result.status in (Status.FEASIBLE, Status.NO_SOLUTION)
    assert result.seconds < 30  # a 0.2-s limit; generous, since a busy machine stretches model building
    if result.status == Status.FEASIBLE:
        assert result.bound >= result.objective
        assert result.gap == pytest.approx((result.bound - result.objective) / abs(result.objective), rel=1e-6)
        assert pyo.value(model.value) == pytest.approx(result.objective)


def test_infeasible():
    m = pyo.ConcreteModel()
    m.x = pyo.Var(domain=pyo.Integers, bounds=(0, 10))
    m.obj = pyo.Objective(expr=m.x)
    m.c = pyo.Constraint(expr=m.x >= 11.5)
    result = solve(m)
    assert result.status == Status.INFEASIBLE
    assert result.objective is None and not result.status.has_solution


def test_thread_count_may_change_between_solves():
    first = solve(knapsack(12), threads=1)
    second = solve(knapsack(12), threads=2)
    third = solve(knapsack(12), threads=1)
    assert first.status == second.status == third.status == Status.OPTIMAL
    assert first.objective == second.objective == third.objective


def test_lp_relaxation_bounds_the_mip():
    lp = solve(knapsack(12, integer=False))
    assert lp.status == Status.OPTIMAL
    assert lp.objective >= brute_force(12)


@pytest.mark.parametrize("kwargs, message", [
    ({"time_limit": 0}, "time_limit"), ({"rel_gap": 1.5}, "rel_gap"), ({"threads": 0}, "threads")])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        solve(knapsack(3), **kwargs)


def test_a_warm_start_is_handed_to_highs():
    """With no nodes and no heuristics HiGHS finds nothing by itself; given a start, it
    returns that start (and pyomo's re-initialisation does not drop it)."""
    import random

    rng = random.Random(3)
    weights, values = [rng.randint(1, 50) for _ in range(40)], [rng.randint(1, 50) for _ in range(40)]
    model = pyo.ConcreteModel()
    model.x = pyo.Var(range(40), domain=pyo.Binary)
    model.capacity = pyo.Constraint(expr=sum(w * model.x[i] for i, w in enumerate(weights)) <= 300)
    model.value = pyo.Objective(expr=sum(v * model.x[i] for i, v in enumerate(values)), sense=pyo.maximize)
    options = {"mip_max_nodes": 0, "mip_heuristic_effort": 0.0, "presolve": "off"}
    assert solve(model, options=options).status == Status.NO_SOLUTION
    start = [(model.x[i], 1.0 if i < 2 else 0.0) for i in range(40)]
    result = solve(model, options=options, start=start)
    assert result.status == Status.FEASIBLE and result.objective == values[0] + values[1]
