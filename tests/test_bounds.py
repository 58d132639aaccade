"""Every bound on the design score stays a bound: against brute force on tiny spaces, and
against designs sampled from the space (hypothesis)."""

import functools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from designer.design import DesignError, solve
from designer.design.depth_branching import DepthBranching, depth_branching
from designer.design.lagrangian import lagrangian_bound
from designer.design.cells import grid
from designer.families import family
from tests.test_design import CASES, brute_force, feasible_designs


@functools.lru_cache(maxsize=None)
def optimum(name: str):
    return brute_force(CASES[name])


@functools.lru_cache(maxsize=None)
def bounds(name: str) -> dict[str, float]:
    """The cell-refinement bound (stopped early, so not yet tight), the Lagrangian bound and the
    depth branching's over it (its target below the optimum, so the optimum's box stays open)."""
    problem = CASES[name]
    best, spec = optimum(name)
    cells = solve(problem, method="refine", rel_gap=0.2, time_limit=20)
    lagrangian = lagrangian_bound(problem, target=best, time_limit=5, incumbent=spec)
    branched = depth_branching(problem, lagrangian, 0.9 * best, time_limit=5)
    return {"cells": cells.solve.bound, "lagrangian": lagrangian.bound, "depth branching": branched.bound}


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


@pytest.mark.parametrize("name", sorted(CASES))
def test_depth_branching_stays_a_bound_and_never_loosens_the_lagrangian(name):
    """Its target below the optimum, so the box holding the optimum must stay open: the bound it
    reports is then a real check, and its candidate designs meet every rule."""
    problem = CASES[name]
    best, spec = optimum(name)
    root = lagrangian_bound(problem, target=0.9 * best, time_limit=5, max_evaluations=10)
    branched = depth_branching(problem, root, 0.9 * best, time_limit=5)
    assert best - 1e-6 <= branched.bound <= root.bound + 1e-9
    assert branched.boxes >= 1 and branched.closed <= branched.boxes
    if branched.feasible is not None:
        assert not problem.violations(branched.feasible)
        assert branched.feasible_value == pytest.approx(problem.evaluate(branched.feasible)[0])


@pytest.mark.parametrize("name", ["bottleneck-free-widths", "inverted-head"])
def test_depth_branching_tightens_where_the_dual_mixes_depths(name):
    """On spaces where the root's maximiser mixes depth extremes the branching lowers the bound;
    work-limited (a few steps per box, a time limit it never reaches on these spaces: it ends
    when every box is split to single depths or closed), so the same on any machine."""
    problem = CASES[name]
    best, _ = optimum(name)
    root = lagrangian_bound(problem, target=0.9 * best, time_limit=60, max_evaluations=10)
    branching = DepthBranching(problem, root)
    branched = branching.run(0.9 * best, time_limit=60)
    assert not branching.open(0.9 * best)  # it ended by itself (split to single depths or closed), not by the clock
    assert best - 1e-6 <= branched.bound < root.bound - 0.02 * (root.bound - best)


@pytest.mark.parametrize("name", ["bottleneck", "mixed-basic-bottleneck"])
def test_every_depth_box_bounds_its_own_designs(name):
    """(B1) the restriction to a box: its designs are the space's with those depths, and its
    Lagrangian bound is at least their best."""
    problem = CASES[name]
    box = [(1, 1), (2, 3)]
    restricted = replace(problem, depth_ranges=box)
    inside = [(value, spec) for value, spec in feasible_designs(problem)
              if all(lo <= st.L <= hi for st, (lo, hi) in zip(spec.stages, box))]
    assert sorted(v for v, _ in feasible_designs(restricted)) == sorted(v for v, _ in inside)
    best = max(v for v, _ in inside)
    assert lagrangian_bound(restricted, target=best, time_limit=5).bound >= best - 1e-6


@pytest.mark.parametrize("ranges, message", [([(1, 2)], "one \\(lo, hi\\) per stage"),
                                             ([(3, 3), (1, 1)], "stage 1's range \\(3, 3\\) holds no depth"),
                                             ([(1, 1), 3], "stage 2: a pair of integers")])
def test_depth_ranges_are_checked(ranges, message):
    with pytest.raises(DesignError, match=message):
        replace(CASES["bottleneck"], depth_ranges=ranges)  # the first stage is at most 2 deep there


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
