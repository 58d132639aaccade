"""Every registered block family keeps the promises the rest of the project relies on: exact
costs (recounted on torch), the posynomial form the design MILP fits, JSON and TinyNAS round
trips, identity at init for residual blocks, a channel shrink that keeps the function when
nothing is removed. A new family is tested by being registered."""

import numpy as np
import pytest
import torch
from torch import nn

from designer.costs import block_layers, count
from designer.design.posynomial import MONOMIALS, block_posynomial
from designer.design.problem import DesignProblem
from designer.entropy import deepmad_scores, units
from designer.families import NAMES, family
from designer.network import build
from designer.spec import NetworkSpec, SpecError, Stage, Stem, from_tinynas, to_tinynas
from tests.test_costs import recount


def two_stage_spec(name: str) -> NetworkSpec:
    return NetworkSpec(resolution=12, in_channels=2, num_classes=5, stem=Stem(8, 3, 1),
                       stages=[Stage(name, 8, 16, 3, 2, 1), Stage(name, 24, 20, 5, 2, 2)], head=32)


def test_the_registry_holds_the_four_families():
    assert set(NAMES) >= {"basic", "bottleneck", "inverted", "fused"}
    with pytest.raises(ValueError, match="family: must be one of"):
        family("dense")


@pytest.mark.parametrize("name", NAMES)
def test_costs_equal_the_torch_recount(name):
    spec = two_stage_spec(name)
    costs = count(spec)
    model, params, macs, shapes = recount(spec)
    assert (costs.params, costs.macs) == (params, macs)
    assert [layer.name for layer in costs.layers] == list(shapes)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("stride, first", [(1, True), (2, True), (1, False)])
def test_block_costs_are_the_posynomial_the_milp_fits(name, stride, first):
    problem = DesignProblem(family=name, max_macs=1e9)
    coefficients = block_posynomial(problem, k=3, stride=stride, res=14, first=first)
    assert (coefficients >= 0).all()
    rng = np.random.default_rng(0)
    for _ in range(20):  # points the fit never saw
        c_in, c, b = (int(v) for v in rng.integers(1, 300, size=3))
        c_in = c_in if first else c
        layers, _ = block_layers(name, "b", c_in, c, b, 3, stride, 14, first)
        kept = [layer for layer in layers if ".se." not in layer.name]
        monomials = np.array([c_in ** e0 * c ** e1 * b ** e2 for e0, e1, e2 in MONOMIALS], float)
        assert monomials @ coefficients[:, 0] == sum(layer.macs for layer in kept)
        assert monomials @ coefficients[:, 1] == sum(layer.params for layer in kept)


@pytest.mark.parametrize("name", NAMES)
def test_json_and_tinynas_round_trips(name):
    spec = two_stage_spec(name)
    assert NetworkSpec.from_json(spec.to_json()) == spec
    if family(name).tinynas_class is None:
        with pytest.raises(SpecError, match=f"TinyNAS has no block class for the {name} family"):
            to_tinynas(spec)
    else:
        back = from_tinynas(to_tinynas(spec), resolution=spec.resolution, num_classes=spec.num_classes)
        assert back.stages == spec.stages and back.head == spec.head


@pytest.mark.parametrize("name", NAMES)
def test_scores_use_the_family_width_and_layers(name):
    import math
    spec = two_stage_spec(name)
    blocks = family(name)
    block_units = [u for u in units(spec) if u.name.startswith("stages.")]
    inputs = [8, 8, 8, 24]  # each block's c_in: stem 8 -> stage 0 (8, 8) -> stage 1 (24, 24)
    for unit, c_in, stage in zip(block_units, inputs, [spec.stages[0]] * 2 + [spec.stages[1]] * 2):
        fan_ins = c_in * stage.btn ** blocks.btn_exponent * stage.k ** (2 * blocks.kernel_convs)
        assert unit.log_width == pytest.approx(math.log(fan_ins))
        assert unit.layers == blocks.layers_per_block
    assert deepmad_scores(spec).layers == 1 + 4 * blocks.layers_per_block + 1


@pytest.mark.parametrize("name", NAMES)
def test_residual_blocks_start_as_the_identity(name):
    torch.manual_seed(0)
    model = build(two_stage_spec(name)).eval()
    x = torch.relu(torch.randn(3, 8, 12, 12))
    later_block = model.stages[0][1]  # not a stage's first block: same shapes, a residual
    with torch.no_grad():
        assert torch.allclose(later_block(x), x, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_shrink_keeps_the_function_when_nothing_is_removed(name):
    torch.manual_seed(0)
    model = build(two_stage_spec(name)).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.running_var, 0.5, 1.5)
    twin = build(two_stage_spec(name)).eval()
    blocks = family(name)
    x = torch.randn(4, 8, 12, 12)
    for block, new in zip(model.stages[0], twin.stages[0]):
        blocks.shrink(block, new, keep=16)  # every inner channel kept, through the family's own shrink
        with torch.no_grad():
            assert torch.allclose(new(x), block(x), atol=1e-5)
        x = block(x).detach()


def test_a_fused_network_designs_builds_trains_prunes_and_maps():
    from designer.design.solve import solve
    from designer.mapping.sources.importer import from_torch
    from designer.mapping.problem import MappingProblem, budgets
    from designer.mapping.stages import solve as solve_mapping
    from designer.network import example_input
    from designer.pruning.channels import prune_stage_widths
    from designer.train.data import load_dataset
    from designer.train.loop import TrainConfig, evaluate, train
    splits = load_dataset("digits")
    problem = DesignProblem(family="fused", resolution=8, in_channels=1, num_classes=10, strides=[1, 1, 2],
                            max_macs=6e5, max_params=2e4, out_widths=(8, 48), stem_widths=(8, 16), depths=(1, 2),
                            kernels=(3,), effectiveness=1.0)
    design = solve(problem, time_limit=20)
    assert design.spec is not None and not problem.violations(design.spec)
    assert {stage.family for stage in design.spec.stages} == {"fused"}
    model = build(design.spec)
    train(model, splits.train, TrainConfig(epochs=8, seed=0))
    assert evaluate(model, splits.test)["accuracy"] > 0.6  # chance is 0.1
    full = count(design.spec)
    calibration = splits.train.tensors[0][:64]
    pruned = prune_stage_widths(model.eval(), calibration, max_macs=0.6 * full.macs, fractions=[0.25, 0.5, 0.75, 1.0])
    assert count(pruned.model.spec).macs == pruned.macs <= 0.6 * full.macs
    graph = from_torch(pruned.model.eval(), example_input(pruned.model.spec, 1))
    limits = budgets(graph, time_limit=5)
    mapped = solve_mapping(MappingProblem(graph, limits.halfway, time_limit=5, budgets=limits))
    assert mapped.mapping is not None and mapped.replay
