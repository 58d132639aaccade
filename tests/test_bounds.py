"""Every bound on the design score stays a bound: against brute force on tiny spaces, and
against designs sampled from the space (hypothesis)."""

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from designer.design import solve
from designer.design.lagrangian import lagrangian_bound
from designer.design.cells import grid
from designer.families import family
from tests.test_design import CASES, brute_force, feasible_designs


@functools.lru_cache(maxsize=None)
def optimum(name: str):
    return brute_force(CASES[name])


@functools.lru_cache(maxsize=None)
def bounds(name: str) -> dict[str, float]:
    """The cell-refinement bound (stopped early, so not yet tight) and the Lagrangian bound."""
    problem = CASES[name]
    best, spec = optimum(name)
    cells = solve(problem, method="refine", rel_gap=0.2, time_limit=20)
    lagrangian = lagrangian_bound(problem, target=best, time_limit=5, incumbent=spec)
    return {"cells": cells.solve.bound, "lagrangian": lagrangian.bound}


@pytest.mark.parametrize("name", sorted(CASES))
def test_lagrangian_bound_is_at_least_the_brute_force_optimum(name):
    best, spec = optimum(name)
    result = lagrangian_bound(CASES[name], target=best, time_limit=5, incumbent=spec)
    assert result.bound >= best - 1e-6
    assert result.evaluations == len(result.history) and result.bound == min(result.history)  # the smallest is kept
    # the DP's maximiser is a design of the space (it may break budgets, which are relaxed)
    design = result.design
    assert len(design.stages) == CASES[name].n_stages
    for stage, (lo, hi) in zip(design.stages, (CASES[name].stage_depth_bounds(j)
                                                 for j in range(1, CASES[name].n_stages + 1))):
        assert lo <= stage.L <= hi and stage.btn in grid(*CASES[name].btn_bounds(stage.out, family(stage.family)), 8)


def test_lagrangian_bound_with_no_time_left_still_evaluates_once():
    best, spec = optimum("bottleneck")
    result = lagrangian_bound(CASES["bottleneck"], target=best, time_limit=1e-9, incumbent=spec)
    assert result.evaluations == 1 and result.bound >= best - 1e-6


@functools.lru_cache(maxsize=None)
def feasible(name: str) -> list:
    return list(feasible_designs(CASES[name]))


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_no_sampled_design_scores_above_any_reported_bound(name, data):
    """Designs drawn from the space's feasible ones (sampling the whole space would mostly draw
    designs that break a budget: 3% of the inverted space is feasible)."""
    score, spec = data.draw(st.sampled_from(feasible(name)))
    assert score == CASES[name].evaluate(spec)[0] and not CASES[name].violations(spec)
    for method, bound in bounds(name).items():
        assert score <= bound + 1e-6, f"{method} bound {bound} below a feasible design scoring {score}"
