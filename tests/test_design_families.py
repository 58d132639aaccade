"""The block family as a decision per stage (issue 27): the mixed space against brute force,
each single family, the budgets' minima, the built network, and the problem's contracts."""

import json
import math

import pytest
from typer.testing import CliRunner

from designer.cli import app
from designer.costs import count
from designer.design import DesignError, DesignProblem, solve
from designer.design.minimum import minima
from designer.design.search import constructive_design, evolutionary_search
from designer.entropy import deepmad_scores
from designer.network import build
from tests.test_design import CASES, brute_force, feasible_designs

MIXED = ["mixed-basic-bottleneck", "mixed-inverted-fused"]


@pytest.mark.parametrize("name", MIXED)
def test_the_mixed_optimum_beats_every_single_family_and_the_milp_finds_it(name):
    problem = CASES[name]
    best, spec = brute_force(problem)
    singles = {blocks.name: brute_force(problem.restricted(blocks.name))[0] for blocks in problem.block_families}
    assert all(best > value for value in singles.values()), (best, singles)  # mixing pays on these spaces
    assert len({stage.family for stage in spec.stages}) > 1
    result = solve(problem, method="exact", rel_gap=0.0, time_limit=60)
    assert result.status == "optimal" and result.score == pytest.approx(best, rel=1e-9)
    assert len({stage.family for stage in result.spec.stages}) > 1 and not problem.violations(result.spec)
    # the design is a network: its torch module has the parameters the cost model counts
    module = build(result.spec)
    assert sum(p.numel() for p in module.parameters()) == count(result.spec).params == result.params


def test_a_restricted_problem_is_a_subset_of_the_mixed_one():
    problem = CASES["mixed-basic-bottleneck"]
    alone = problem.restricted("bottleneck")
    assert not alone.mixed and alone.family == "bottleneck" and alone.effectiveness == problem.effectiveness
    assert alone.btn_ratio == (0.1, 1.0)  # the family's own ratio: the mixed problem gave none
    for _, spec in feasible_designs(alone):
        assert not problem.violations(spec)
    start = constructive_design(problem)
    assert start is not None and not problem.violations(start)
    with pytest.raises(DesignError, match="'fused' is not among this problem's families"):
        problem.restricted("fused")


@pytest.mark.parametrize("families", [("basic", "bottleneck"), ("inverted", "fused")])
def test_each_budget_minimum_over_a_mixed_space_is_the_brute_force_minimum(families):
    space = dict(families=families, resolution=32, num_classes=10, strides=[1, 2, 2], stem_widths=(16, 24),
                 out_widths=(16, 32), depths=(1, 2), first_stage_max_depth=2, kernels=(3, 5), effectiveness=None)
    free = DesignProblem(max_macs=1e12, **space)
    smallest = dict.fromkeys(("max_macs", "max_params", "max_layers", "max_activation_bytes"), math.inf)
    for _, spec in feasible_designs(free):
        costs = count(spec)
        for field, value in (("max_macs", costs.macs), ("max_params", costs.params),
                             ("max_layers", deepmad_scores(spec).layers),
                             ("max_activation_bytes", costs.max_activation_bytes)):
            smallest[field] = min(smallest[field], value)
    tight = DesignProblem(max_macs=1.0, max_params=1.0, max_layers=1, max_activation_bytes=1.0, **space)
    assert {m.field: m.smallest for m in minima(tight)} == smallest


def test_the_mixed_problem_round_trips_and_resolves_its_defaults():
    problem = DesignProblem(families=["inverted", "bottleneck"], max_macs=3e8)
    assert problem.family == "inverted" and problem.mixed
    assert problem.effectiveness == 0.3  # the strictest of 0.5 (inverted) and 0.3 (bottleneck)
    assert problem.btn_ratio is None and problem.kernels is None  # each family keeps its own
    assert problem.btn_bounds(64, problem.block_families[0]) == (96, 384)
    assert problem.btn_bounds(64, problem.block_families[1]) == (8, 64)
    again = DesignProblem.from_dict(json.loads(problem.to_json()))
    assert again == problem
    given = DesignProblem(families=("inverted", "fused"), btn_ratio=(1.5, 3.0), max_macs=3e8)
    assert given.btn_bounds(64, given.block_families[1]) == (96, 192)  # a given ratio holds for every family


@pytest.mark.parametrize("fields, message", [
    (dict(families=("basic", "basic")), "families: each family once"),
    (dict(families=("basic", "conv")), "family: must be one of"),
    (dict(family="fused", families=("basic", "bottleneck")), "family: 'fused' gives the stride pattern"),
    (dict(families="basic,bottleneck"), "families: a list of family names"),
    (dict(families=("basic", "bottleneck"), objective="penalised"), "depth penalty"),
    (dict(families=("basic", "bottleneck"), max_depth_spread=2), "depth penalty"),
    (dict(families=("basic", "fused"), counting="tinynas"), "counting: 'tinynas' is defined for"),
])
def test_bad_families_are_refused_by_name(fields, message):
    with pytest.raises(DesignError, match=message):
        DesignProblem(max_macs=1e8, **fields)


def test_the_evolutionary_search_takes_one_family():
    with pytest.raises(DesignError, match="families: the evolutionary search designs one family"):
        evolutionary_search(CASES["mixed-basic-bottleneck"], time_limit=1)


def test_the_cli_designs_over_several_families(tmp_path):
    space = ["--resolution", "32", "--classes", "10", "--strides", "1,2,2", "--stem-widths", "16,24",
             "--widths", "16,40", "--depths", "1,3", "--first-stage-max-depth", "2", "--effectiveness", "0.5"]
    result = CliRunner().invoke(app, ["design", "--family", "basic,bottleneck", "--macs", "3e6", "--params", "45e3",
                                      "--layers", "14", "--method", "exact", "--time-limit", "60", "--json",
                                      *space])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["problem"]["families"] == ["basic", "bottleneck"]
    assert [stage["family"] for stage in report["spec"]["stages"]] == ["basic", "bottleneck"]
    problem = DesignProblem.from_dict(report["problem"])  # the problem the command built, solved by brute force
    assert problem.kernels is None and problem.mixed
    assert report["score"] == pytest.approx(brute_force(problem)[0], rel=1e-9)
    bad = CliRunner().invoke(app, ["design", "--family", "basic,conv", "--macs", "3e6", *space])
    assert bad.exit_code != 0 and "--family: must be one of" in bad.output
