"""The design MILP against brute-force enumeration of tiny spaces, and its contracts."""

import itertools
import json
import math

import pytest
from typer.testing import CliRunner

from designer.cli import app
from designer.costs import count
from designer.design import DesignError, DesignProblem, solve
from designer.design.search import evolutionary_search
from designer.design.cells import grid
from designer.entropy import deepmad_scores
from designer.spec import NetworkSpec


def feasible_designs(problem: DesignProblem):
    """Every (objective value, spec) of the space that meets every rule, by the problem's own recount."""
    step = problem.width_step
    stage_options = []
    for j in range(1, problem.n_stages + 1):
        options = []
        for blocks in problem.block_families:  # every family the stage may take
            for out in grid(*problem.out_widths, step):
                for btn in grid(*problem.btn_bounds(out, blocks), step):
                    for k in problem.kernels_of(blocks):
                        lo, hi = problem.stage_depth_bounds(j)
                        options += [(out, btn, k, L, blocks.name) for L in range(lo, hi + 1)]
        stage_options.append(options)
    for stem in grid(*problem.stem_widths, step):
        for stages in itertools.product(*stage_options):
            spec = problem.to_spec(stem, list(stages))
            value, broken = problem.evaluate(spec)
            if not broken:
                yield value, spec


def brute_force(problem: DesignProblem):
    """Best (objective value, spec) over every design of the space."""
    return max(feasible_designs(problem), key=lambda item: item[0], default=(-math.inf, None))


TINY = dict(resolution=32, num_classes=10, strides=[1, 2, 2], alpha=[1.0, 1.0, 4.0], stem_widths=(16, 24),
            out_widths=(16, 40), depths=(1, 3), first_stage_max_depth=2)

CASES = {
    "bottleneck": DesignProblem(family="bottleneck", kernels=(3,), max_macs=2.5e6, max_params=40e3,
                                effectiveness=0.5, **TINY),
    "bottleneck-free-widths": DesignProblem(family="bottleneck", kernels=(3, 5), max_macs=3e6, max_params=50e3,
                                            effectiveness=0.6, monotone=False, max_layers=14, **TINY),
    "inverted-head": DesignProblem(family="inverted", kernels=(3,), max_macs=2e6, max_params=30e3,
                                   effectiveness=0.6, head=64, btn_ratio=(1.5, 3.0), **TINY),
    "basic-memory": DesignProblem(family="basic", kernels=(3,), max_macs=6e6, max_params=60e3,
                                  effectiveness=0.9, max_activation_bytes=24_000, max_depth_spread=1, **TINY),
    "fused": DesignProblem(family="fused", kernels=(3,), max_macs=4e6, max_params=40e3, effectiveness=0.6,
                           btn_ratio=(1.0, 2.0), **TINY),
    # the DeepMAD authors' counting (TinyNAS FLOPs and model size, no classifier), with and without a head conv
    "bottleneck-tinynas-head": DesignProblem(family="bottleneck", kernels=(3,), max_macs=2.5e6, max_params=40e3,
                                             effectiveness=0.5, head=48, counting="tinynas", **TINY),
    "basic-tinynas": DesignProblem(family="basic", kernels=(3,), max_macs=5e6, max_params=50e3, effectiveness=0.9,
                                   counting="tinynas", **TINY),
    # the family a decision per stage (issue 27): 2 and 3 layers per block, each family its own btn ratio
    "mixed-basic-bottleneck": DesignProblem(families=("basic", "bottleneck"), kernels=(3,), max_macs=3e6,
                                            max_params=45e3, effectiveness=0.5, max_layers=14, **TINY),
    # one btn ratio given for both; a head conv and an activation budget
    "mixed-inverted-fused": DesignProblem(families=("inverted", "fused"), kernels=(3,), max_macs=2e6,
                                          max_params=30e3, effectiveness=0.6, head=64, btn_ratio=(1.5, 3.0),
                                          max_activation_bytes=40_000,
                                          **{**TINY, "out_widths": (16, 32), "depths": (1, 2)}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_exact_milp_equals_brute_force(name):
    problem = CASES[name]
    best_score, best_spec = brute_force(problem)
    result = solve(problem, method="exact", rel_gap=0.0, time_limit=60)
    assert result.status == "optimal"
    assert result.spec is not None and not problem.violations(result.spec)
    assert result.score == pytest.approx(best_score, rel=1e-9)
    # the MILP objective is the real score of the design it returns
    assert result.solve.objective == pytest.approx(result.score, rel=1e-6)
    assert result.solve.bound >= result.score - 1e-6


@pytest.mark.parametrize("name", ["bottleneck", "inverted-head", "fused"])
def test_cell_refinement_proves_the_same_optimum(name):
    problem = CASES[name]
    best_score, _ = brute_force(problem)
    result = solve(problem, method="refine", rel_gap=1e-9, time_limit=60)
    assert result.status == "optimal"
    assert result.score == pytest.approx(best_score, rel=1e-9)
    assert result.solve.bound >= best_score - 1e-6
    assert not problem.violations(result.spec)


def test_memory_budget_holds_on_recount_and_binds():
    problem = CASES["basic-memory"]
    result = solve(problem, method="exact", rel_gap=0.0)
    assert count(result.spec).max_activation_bytes <= problem.max_activation_bytes
    unconstrained = DesignProblem.from_dict({**problem.to_dict(), "max_activation_bytes": None})
    free = solve(unconstrained, method="exact", rel_gap=0.0)
    assert count(free.spec).max_activation_bytes > problem.max_activation_bytes  # the budget really binds
    assert free.score > result.score


def test_infeasible_budget_names_the_budget_and_the_smallest_value():
    problem = DesignProblem.from_dict({**CASES["bottleneck"].to_dict(), "max_macs": 1e5})
    with pytest.raises(DesignError, match=r"the MACs budget 100000 cannot be met.*smallest MACs any design in the "
                                          r"space can have is (at least )?[\d,]+"):
        solve(problem, method="exact")
    with pytest.raises(DesignError) as info:
        solve(problem, method="exact")
    smallest = int(str(info.value).rsplit(" ", 1)[-1].replace(",", ""))
    # the stated minimum is a true lower bound: designs at it exist (meeting the other budgets) or none below
    relaxed = DesignProblem.from_dict({**problem.to_dict(), "max_macs": smallest})
    assert solve(relaxed, method="exact").spec is not None


@pytest.mark.parametrize("kwargs, message", [
    ({"family": "dense"}, "family: must be one of"),
    ({"strides": [2, 3]}, "strides"),
    ({"max_macs": -1}, "max_macs: must be a positive finite number"),
    ({"max_params": float("inf")}, "max_params: must be a positive finite number"),
    ({"out_widths": (64, 16)}, "out_widths: lower bound 64 exceeds upper bound 16"),
    ({"strides": [2, 2, 2], "alpha": [1, 1]}, "alpha: got 2 stage weights for 3"),
    ({"alpha": [1, 1, float("nan"), 1, 8]}, "alpha: stage weights must be finite"),
    ({"alpha": [1, 2]}, "alpha: got 2 stage weights for 5"),
    ({"kernels": (2,)}, "kernels: must be odd"),
    ({"max_depth_spread": -1}, "max_depth_spread"),
    ({"counting": "flops"}, "counting: must be one of mpdesign, tinynas"),
    ({"family": "inverted", "counting": "tinynas"}, "counting: 'tinynas' is defined for the bottleneck and basic"),
])
def test_problem_validation(kwargs, message):
    with pytest.raises(DesignError, match=message):
        DesignProblem(**kwargs)


def test_problem_round_trips_through_json():
    problem = CASES["inverted-head"]
    again = DesignProblem.from_dict(json.loads(problem.to_json()))
    assert again == problem


def test_evolutionary_baseline_returns_feasible_designs():
    problem = CASES["bottleneck"]
    result = evolutionary_search(problem, time_limit=None, max_candidates=2000, seed=1)
    assert result.spec is not None and not problem.violations(result.spec)
    assert result.solve.bound is None  # it proves nothing
    assert result.score <= brute_force(problem)[0] + 1e-9


def test_cli_design_json():
    runner = CliRunner()
    args = ["design", "--resolution", "32", "--classes", "10", "--strides", "1,2,2", "--alpha", "1,1,4",
            "--macs", "2.5e6", "--params", "4e4", "--effectiveness", "0.5", "--time-limit", "20", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    for key in ("spec", "status", "objective", "bound", "gap", "seconds", "macs", "params", "effectiveness"):
        assert key in payload
    assert payload["macs"] <= 2.5e6 and payload["params"] <= 4e4
    bad = runner.invoke(app, ["design", "--macs", "1e5", "--params", "1e6", "--time-limit", "5"])
    assert bad.exit_code == 2 and "MACs budget" in bad.output


@pytest.mark.parametrize("name", ["bottleneck", "inverted-head", "fused"])
def test_convex_relaxation_bounds_the_designs_with_its_depths(name):
    from designer.design.relax import relaxation_bound
    problem = CASES[name]
    result = solve(problem, method="exact", rel_gap=0.0)
    relaxed = relaxation_bound(problem, [s.L for s in result.spec.stages], [s.k for s in result.spec.stages])
    assert relaxed.bound is not None and relaxed.bound >= result.score - 1e-6


def test_the_readme_python_design_example_designs_builds_and_trains():
    """The README's Python example, as written there (fewer epochs), with the CLI's defaults."""
    from designer import DesignProblem, build, solve as solve_api
    from designer.train.data import load_dataset
    from designer.train.loop import TrainConfig, evaluate, train
    splits = load_dataset("digits")
    problem = DesignProblem(resolution=8, in_channels=1, num_classes=10, strides=[1, 1, 2],
                            max_macs=2e6, max_params=1e5, out_widths=(8, 64), depths=(1, 4))
    assert problem.effectiveness == 0.3  # the family's default, as on the command line
    result = solve_api(problem, time_limit=60)
    # solved to its gap long before the limit (2 s here), so the design, and the accuracy of training it
    # with a fixed seed, never depend on how fast the machine is
    assert result.status == "optimal", result.solve
    assert result.spec is not None and not problem.violations(result.spec)
    assert result.effectiveness <= 0.3 + 1e-12
    model = build(result.spec)
    train(model, splits.train, TrainConfig(epochs=10))
    assert evaluate(model, splits.test)["accuracy"] > 0.5


def synthetic_profile():
    """A latency profile with fixed coefficients (not measured: the test needs exact numbers)."""
    from designer.design.latency import LatencyProfile
    return LatencyProfile({"pointwise": [2e-8, 1e-7, 0.01], "spatial": [3e-8, 1e-7, 0.02],
                           "depthwise": [5e-8, 2e-7, 0.03], "linear": [1e-8, 1e-7, 0.005]},
                          device="synthetic", torch_version="", precision="fp32", batch=1, bytes_per_element=4,
                          constant_ms=0.5)


def test_a_latency_budget_binds_and_the_milp_agrees_with_brute_force():
    profile = synthetic_profile()
    base = CASES["bottleneck"]
    free = solve(base, method="exact", rel_gap=0.0)
    budget = 0.8 * profile.predict(free.spec)  # the unconstrained optimum breaks it
    problem = DesignProblem.from_dict({**base.to_dict(), "max_latency_ms": budget,
                                       "latency_profile": profile.to_dict()})
    assert DesignProblem.from_dict(json.loads(problem.to_json())) == problem  # round trip, profile inside
    best_score, best_spec = brute_force(problem)
    result = solve(problem, method="exact", rel_gap=0.0)
    assert result.status == "optimal" and result.score == pytest.approx(best_score, rel=1e-9)
    assert result.score < free.score
    assert result.latency_ms == pytest.approx(profile.predict(result.spec), rel=1e-12)
    assert result.latency_ms <= budget * (1 + 1e-9)
    # the MILP's own latency expression at its solution is the profile's prediction for the spec
    import pyomo.environ as pyo

    from designer.design.milp import build_model, extract
    from designer.design.cells import choice_to_spec, exact_cells
    from solvers import highs
    model, stages = build_model(problem, exact_cells(problem))
    highs.solve(model, time_limit=60, rel_gap=0.0)
    spec = choice_to_spec(problem, extract(model, exact_cells(problem), stages))
    assert pyo.value(model.latency_cost) == pytest.approx(profile.predict(spec), rel=1e-6)
    refined = solve(problem, method="refine", rel_gap=1e-9, time_limit=60)
    assert refined.score == pytest.approx(best_score, rel=1e-9) and not problem.violations(refined.spec)
    with pytest.raises(DesignError, match="modelled milliseconds budget"):
        solve(DesignProblem.from_dict({**problem.to_dict(), "max_latency_ms": 1e-6}), method="exact")


def test_profile_and_latency_budget_through_the_command_line(tmp_path):
    from designer.design.latency import LatencyProfile
    path = tmp_path / "profile.json"
    runner = CliRunner()
    # the test's verdict must not depend on how busy the machine is: any held-out error is kept
    result = runner.invoke(app, ["profile", "--quick", "--out", str(path), "--max-error", "1e9"])
    assert result.exit_code == 0, result.output
    profile = LatencyProfile.load(path)
    from designer.schemas import LatencyProfileFile
    LatencyProfileFile.model_validate(json.loads(path.read_text()))  # the written file is the documented payload
    assert profile.batch == 1 and profile.precision == "fp32" and profile.fit["samples"] > 0
    assert all(v >= 0 for values in profile.coefficients.values() for v in values)
    budget = 1.5 * profile.predict(CASES["bottleneck"].to_spec(16, [(16, 8, 3, 1), (16, 8, 3, 1)]))
    design = runner.invoke(app, ["design", "--resolution", "32", "--classes", "10", "--strides", "1,2,2",
                                 "--alpha", "1,1,4", "--macs", "2.5e6", "--params", "4e4", "--effectiveness", "0.5",
                                 "--latency-ms", str(budget), "--profile", str(path), "--time-limit", "20", "--json"])
    assert design.exit_code == 0, design.output
    data = json.loads(design.stdout)
    assert data["latency_ms"] <= budget * (1 + 1e-9)
    assert data["latency_ms"] == pytest.approx(profile.predict(NetworkSpec.from_dict(data["spec"])), rel=1e-9)


def test_a_profile_fitted_on_whole_networks(tmp_path):
    """``--networks``: random networks of every family timed whole, the per-network constant
    fitted with the per-layer terms; the profile says what it was fitted on."""
    from designer.design.latency import LatencyProfile, network_features, random_spec
    import numpy as np
    path = tmp_path / "profile.json"
    result = CliRunner().invoke(app, ["profile", "--networks", "8", "--resolution", "32", "--out", str(path),
                                      "--max-error", "1e9"])
    assert result.exit_code == 0, result.output
    profile = LatencyProfile.load(path)
    assert profile.fit["on"] == "networks" and profile.fit["samples"] == 8 and profile.constant_ms >= 0
    spec = random_spec(np.random.default_rng(5), "inverted", 32)
    coefficients = np.concatenate([profile.coefficients[kind] for kind in ("pointwise", "spatial", "depthwise",
                                                                           "linear")] + [[profile.constant_ms]])
    assert profile.predict(spec) == pytest.approx(float(network_features(spec, 4, 1) @ coefficients), rel=1e-9)


def test_penalised_objective_matches_brute_force():
    """The authors' objective (score minus 10 exp(std of the penalty stages' depths)), exact,
    on a space whose optimum has unequal depths (so the penalty's planes matter)."""
    problem = DesignProblem.from_dict({**CASES["basic-memory"].to_dict(), "objective": "penalised", "depths": [1, 4],
                                       "first_stage_max_depth": 4, "max_depth_spread": None,
                                       "max_activation_bytes": None, "max_macs": 3e6})
    best, spec = brute_force(problem)  # the problem's evaluate is its objective
    assert deepmad_scores(spec, problem.stage_alpha).depth_penalty > 10 + 1e-6
    for method in ("exact", "refine"):
        result = solve(problem, method=method, rel_gap=1e-9, time_limit=60)
        assert not problem.violations(result.spec)
        value = result.score - result.depth_penalty
        assert value == pytest.approx(best, rel=1e-9), method
        assert result.solve.objective == pytest.approx(value, rel=1e-9)
        assert result.solve.bound >= best - 1e-6


def test_tinynas_counting_changes_what_the_budgets_allow():
    """Under TinyNAS's counting the same numbers are tighter budgets (elementwise FLOPs count, the
    classifier does not): the optimum differs, and it meets the budgets as TinyNAS counts them."""
    problem = CASES["bottleneck-tinynas-head"]
    ours = DesignProblem.from_dict({**problem.to_dict(), "counting": "mpdesign"})
    result = solve(problem, method="exact", rel_gap=0.0)
    compute, size = count(result.spec).budget("tinynas")
    assert compute <= problem.max_macs and size <= problem.max_params and result.counted == (compute, size)
    assert brute_force(ours)[0] > result.score
    assert ours.violations(result.spec) == []  # the TinyNAS design also meets our counting here


@pytest.mark.parametrize("family, monotone", [("bottleneck", True), ("basic", False), ("inverted", True),
                                              ("fused", False)])
def test_each_budget_minimum_is_the_brute_force_minimum_over_the_space(family, monotone):
    """Issue 22: infeasible budgets are proven by arithmetic (the narrowest design minimises every
    cost at once); checked against every design of small spaces, budgets aside."""
    from designer.design.minimum import minima
    space = dict(family=family, resolution=32, num_classes=10, strides=[1, 2, 2], stem_widths=(16, 24),
                 out_widths=(16, 32), depths=(1, 2), first_stage_max_depth=2, monotone=monotone,
                 kernels=(3, 5), effectiveness=None, bytes_per_element=1)
    free = DesignProblem(max_macs=1e12, **space)
    smallest = {"max_macs": math.inf, "max_params": math.inf, "max_layers": math.inf, "max_activation_bytes": math.inf}
    for _, spec in feasible_designs(free):  # every design of the space (no budget binds)
        costs, layers = count(spec), deepmad_scores(spec).layers
        for field, value in (("max_macs", costs.macs), ("max_params", costs.params), ("max_layers", layers),
                             ("max_activation_bytes", costs.max_activation_bytes)):
            smallest[field] = min(smallest[field], value)
    tight = DesignProblem(max_macs=1.0, max_params=1.0, max_layers=1, max_activation_bytes=1.0, **space)
    found = {m.field: m.smallest for m in minima(tight)}
    assert found == smallest
    with pytest.raises(DesignError, match="max_macs: the MACs budget 1 cannot be met.*max_params: the params"):
        solve(DesignProblem(max_macs=1.0, max_params=1.0, **space), time_limit=5)  # both named, before any solve
    just = DesignProblem(max_macs=smallest["max_macs"], max_params=smallest["max_params"], **space)
    assert solve(just, time_limit=30).spec is not None  # at the minimum itself: feasible


def test_the_coarse_start_is_a_restriction_that_keeps_the_constructive_design():
    """The early incumbent's MILP: a few geometric widths per range plus the constructive
    design's own, every one on the grid, so its optimum is a design at least as good as that start."""
    from designer.design.cells import choice_to_spec, coarse_cells, solve_cells
    from designer.design.search import constructive_design
    problem = DesignProblem(family="bottleneck", max_macs=2.5e6, max_params=60e3, effectiveness=0.5,
                            **{**TINY, "out_widths": (16, 256)})
    start = constructive_design(problem)
    cells = coarse_cells(problem, 4, keep=start)
    step = problem.width_step
    for group, lo_hi, kept in [(cells.stem, problem.stem_widths, start.stem.out)] + [
            (cells.out[j], problem.out_widths, st.out) for j, st in enumerate(start.stages)]:
        points = [c.lo for c in group]
        assert all(c.is_point and c.lo % step == 0 and lo_hi[0] <= c.lo <= lo_hi[1] for c in group)
        assert kept in points and len(points) <= 5 and points == sorted(set(points))
    result, choice = solve_cells(problem, cells, None, 1e-9, 1, start_from=start)
    assert str(result.status) == "optimal"
    design = choice_to_spec(problem, choice)
    value, broken = problem.evaluate(design)
    assert broken == [] and value >= problem.evaluate(start)[0] - 1e-6


def test_a_profile_timed_on_a_noisy_machine_is_not_written(tmp_path, monkeypatch):
    """Issue 38: timings that are noise (here: drawn at random) fit nothing; the profile measures
    its held-out error and its noise and refuses to write the fit unless --max-error allows it."""
    import numpy as np

    from designer.design import latency
    rng = np.random.default_rng(0)
    monkeypatch.setattr(latency, "median_forward_seconds", lambda *args, **kwargs: float(rng.uniform(1e-4, 1e-1)))
    path = tmp_path / "profile.json"
    result = CliRunner().invoke(app, ["profile", "--quick", "--out", str(path)])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and not path.exists()
    assert "not written" in text and "on held-out blocks" in text and "--max-error" in text
    result = CliRunner().invoke(app, ["profile", "--quick", "--out", str(path), "--max-error", "1e9"])
    assert result.exit_code == 0 and path.exists() and "machine is busy" in " ".join(result.output.split())
