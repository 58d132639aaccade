import contextlib
import itertools
import re

import pytest
import torch
from torch import nn

from designer.families import NAMES as FAMILY_NAMES
from designer.network import build
from designer.pruning.allocate import BASELINES, allocate
from designer.pruning.apply import apply_sparsity, layer_sparsity, make_permanent, total_sparsity
from designer.pruning.criteria import magnitude_mask
from designer.pruning.curves import Curves, batch_statistics, distortion_curves, prunable_layers
from designer.pruning.prune import prune_model, round_targets
from designer.spec import NetworkSpec, Stage, Stem

SPEC = NetworkSpec(resolution=8, in_channels=1, num_classes=5, stem=Stem(8, 3, 1),
                   stages=[Stage("bottleneck", 16, 8, 3, 2, 1), Stage("inverted", 16, 24, 3, 1, 2)])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build(SPEC)
    for m in net.modules():  # break the zero-init symmetry so every layer matters
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def calibration():
    return torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def plain_distortion(model, x, name, sparsity, recalibrate_bn=True):
    """The definition, without caching or batching: full forwards with batch statistics (or the
    running ones)."""
    module = dict(model.named_modules())[name]
    original = module.weight.detach().clone()
    with torch.no_grad(), batch_statistics(model) if recalibrate_bn else contextlib.nullcontext():
        reference = model(x)
        module.weight.copy_(original * magnitude_mask(original, sparsity, original != 0))
        pruned = model(x)
        module.weight.copy_(original)
    return float(((pruned - reference) ** 2).flatten(1).mean(1).mean())


@pytest.mark.parametrize("recalibrate_bn", [True, False])
def test_curves_equal_plain_forwards(model, calibration, recalibrate_bn):
    grid = [0.0, 0.3, 0.6, 0.9, 1.0]
    curves = distortion_curves(model, calibration, grid, chunk=2, recalibrate_bn=recalibrate_bn)
    assert [c.name for c in curves.layers] == [n for n, _ in prunable_layers(model)]
    for layer in curves.layers:
        assert layer.distortion[0] == pytest.approx(0.0, abs=1e-10)
        for s, d in zip(grid[1:], layer.distortion[1:]):
            plain = plain_distortion(model, calibration, layer.name, s, recalibrate_bn)
            assert d == pytest.approx(plain, rel=1e-4, abs=1e-9)
    if not recalibrate_bn:  # the two measures differ: the running statistics are not the batch's
        batch = distortion_curves(model, calibration, grid, chunk=2)
        assert any(abs(a - b) > 1e-6 * max(abs(b), 1e-12) for x, y in zip(curves.layers, batch.layers)
                   for a, b in zip(x.distortion[1:], y.distortion[1:]))


def test_curves_on_any_module_and_json_round_trip(tmp_path, calibration):
    torch.manual_seed(0)
    generic = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
    curves = distortion_curves(generic, calibration, [0.0, 0.5, 1.0])
    assert [c.macs for c in curves.layers] == [4 * 9 * 36, 144 * 3]
    path = tmp_path / "curves.json"
    curves.save(path)
    assert Curves.load(path) == curves
    path.write_text('{"layers": [{"name": "x"}]}')
    with pytest.raises(ValueError, match=r"layers\[0\] lacks distortion, macs, sparsity, weights"):
        Curves.load(path)
    # read with the payload's own model, strictly (issue 38): a number as text, a flag as a number,
    # an unknown key, each named where it is
    good = {"name": "x", "weights": 3, "macs": 9, "sparsity": [0, 0.5], "distortion": [0.0, 1.0]}
    for change, message in (({"weights": "3"}, r"layers\[0\]\.weights: input should be a valid integer, got '3'"),
                            ({"distortion": [0.0, True]}, r"layers\[0\]\.distortion\[1\]: input should be a valid "
                                                          r"number, got True"),
                            ({"colour": 1}, r"layers\[0\]\.colour: unknown field")):
        with pytest.raises(ValueError, match=message):
            Curves.from_dict({"layers": [{**good, **change}]})
    assert Curves.from_dict({"layers": [good]}).layers[0].sparsity == [0.0, 0.5]


def test_magnitude_mask_keeps_a_weight_per_channel_and_never_restores():
    weight = torch.randn(6, 4, 3, 3)
    mask = magnitude_mask(weight, 1.0)
    assert mask.flatten(1).sum(1).tolist() == [1] * 6
    half = magnitude_mask(weight, 0.5)
    assert half.sum() >= weight.numel() // 2
    kept = weight.abs()[half].min()
    assert (weight.abs()[~half] <= kept).all()
    again = magnitude_mask(weight * half, 0.2, current=half)  # asks for less sparsity than already there
    assert not (again & ~half).any()


def brute_force_allocation(curves, budget):
    best = None
    for picks in itertools.product(*[range(len(c.sparsity)) for c in curves.layers]):
        kept = sum(c.weights * (1 - c.sparsity[i]) for c, i in zip(curves.layers, picks))
        if kept <= budget + 1e-9:
            value = sum(c.distortion[i] for c, i in zip(curves.layers, picks))
            best = value if best is None or value < best else best
    return best


@pytest.mark.parametrize("fraction", [0.2, 0.4, 0.7])
def test_rd_allocation_equals_brute_force_on_real_curves(model, calibration, fraction):
    curves = distortion_curves(model, calibration, [0.0, 0.25, 0.5, 0.75, 0.95])
    curves = Curves(curves.layers[:5])
    total = sum(c.weights for c in curves.layers)
    allocation = allocate(curves, keep_weights=fraction * total, bins=None)
    assert allocation.kept_weights <= fraction * total
    assert allocation.distortion == pytest.approx(brute_force_allocation(curves, fraction * total))
    binned = allocate(curves, keep_weights=fraction * total, bins=5000)
    assert binned.kept_weights <= fraction * total
    assert binned.distortion >= allocation.distortion - 1e-12


def test_macs_budget_is_respected(model, calibration):
    curves = distortion_curves(model, calibration, [i / 10 for i in range(11)])
    total_macs = sum(c.macs for c in curves.layers)
    allocation = allocate(curves, keep_macs=0.3 * total_macs)
    assert allocation.kept_macs <= 0.3 * total_macs
    with pytest.raises(ValueError, match="keep_macs"):
        allocate(curves, keep_macs=1.0)


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_baselines_reach_their_target(model, method):
    net = build(SPEC)
    net.load_state_dict(model.state_dict())
    allocation = BASELINES[method](net, 0.8)
    apply_sparsity(net, allocation)
    make_permanent(net)
    assert total_sparsity(net) == pytest.approx(0.8, abs=0.03)  # one survivor per channel may remain
    assert all(s < 1 for s in layer_sparsity(net).values())


def test_iterative_pruning_uses_the_prune_api_and_never_restores(model, calibration):
    net = build(SPEC)
    net.load_state_dict(model.state_dict())
    seen_masks, zeros_before = [], {}

    def finetune(m):
        seen_masks.append(all(hasattr(mod, "weight_mask") for _, mod in prunable_layers(m)))
        for name, mod in prunable_layers(m):  # a fine-tuning step that tries to revive pruned weights
            with torch.no_grad():
                mod.weight_orig.add_(0.01)
        for name, mod in prunable_layers(m):
            if name in zeros_before:
                assert not (zeros_before[name] & (mod.weight != 0)).any()
        for name, mod in prunable_layers(m):
            zeros_before[name] = mod.weight == 0

    report = prune_model(net, calibration, method="rd", sparsity=0.6, schedule="iterative",
                         finetune=finetune, grid=[i / 20 for i in range(21)])
    assert all(seen_masks) and len(report.rounds) == len(round_targets(0.4, 0.2, "iterative"))
    assert total_sparsity(net) == pytest.approx(0.6, abs=0.02)
    assert not any(hasattr(mod, "weight_mask") for _, mod in prunable_layers(net))  # permanent


def test_round_targets():
    assert round_targets(0.1, 0.2, "one-shot") == [0.1]
    targets = round_targets(0.5, 0.2, "iterative")
    assert targets == pytest.approx([0.8, 0.64, 0.512, 0.5])
    with pytest.raises(ValueError, match="schedule"):
        round_targets(0.5, 0.2, "weekly")


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_shrink_keeps_the_function_when_nothing_is_removed_and_recounts(family, calibration):
    from designer.costs import count
    from designer.pruning.channels import shrink
    spec = NetworkSpec(resolution=8, in_channels=1, num_classes=5, stem=Stem(8, 3, 1),
                       stages=[Stage(family, 16, 16, 3, 2, 1), Stage(family, 24, 32, 3, 2, 2)])
    torch.manual_seed(0)
    net = build(spec).eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    same = shrink(net, {0: 16, 1: 32}).eval()
    assert torch.allclose(same(calibration), net(calibration), atol=1e-5)
    small = shrink(net, {0: 5, 1: 9}).eval()
    assert small.spec.stages[0].btn == 5 and small.spec.stages[1].btn == 9
    assert sum(p.numel() for p in small.parameters()) == count(small.spec).params
    assert small(calibration).shape == (64, 5)


def test_channel_pruning_meets_the_budget_on_recount(model, calibration):
    from designer.costs import count
    from designer.pruning.channels import prune_stage_widths
    full = count(model.spec)
    result = prune_stage_widths(model, calibration, max_macs=0.7 * full.macs, fractions=[0.25, 0.5, 0.75, 1.0])
    recount = count(result.model.spec)
    assert recount.macs <= 0.7 * full.macs and recount.macs == result.macs
    from designer.pruning.groups import ChannelPruning  # one result type for both channel pruners
    assert isinstance(result, ChannelPruning) and (result.params_dense, result.macs_dense) == (full.params, full.macs)
    assert result.kept and all(re.fullmatch(r"stages\[\d+\]\.btn", name) for name in result.kept)
    assert sum(p.numel() for p in result.model.parameters()) == recount.params == result.params
    with pytest.raises(ValueError, match="below the smallest network"):
        prune_stage_widths(model, calibration, max_params=10)


def test_iterative_pruning_shows_the_round_and_what_is_left(model, calibration, capsys):
    """Issue 23: a round counter (k of n) with an estimate, not a per-layer bar that restarts."""
    import copy
    prune_model(copy.deepcopy(model), calibration, method="rd", sparsity=0.6, schedule="iterative", grid=[0, 0.5, 1],
                progress=True)
    err = capsys.readouterr().err
    rounds = len(round_targets(0.4, 0.2, "iterative"))
    assert f"pruning ({rounds} rounds)" in err and f"round {rounds}/{rounds}: distortion curves" in err


def test_layer_macs_is_torchs_counter_and_counts_every_token():
    """Issue 23: one MAC counter for user modules (FlopCounterMode): a conv's weights x output
    positions, and a linear layer once per token (the hooks it replaced counted it once)."""
    from designer.pruning.curves import layer_macs
    from designer.user_model import inspect_module
    from tests.models.cifar import tv_resnet18
    net = tv_resnet18().eval()
    macs = layer_macs(net, torch.zeros(1, 3, 64, 64))
    assert macs["conv1"] == net.conv1.weight.numel() * 32 * 32 and macs["fc"] == net.fc.weight.numel()
    assert sum(macs.values()) == inspect_module(net, (1, 3, 64, 64))["macs"]  # convs and the linear: all of it
    tokens = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    assert layer_macs(tokens, torch.zeros(1, 10, 8)) == {"0": 10 * 8 * 16, "2": 10 * 16 * 4}


def test_a_criterion_is_an_object_passed_in(model, calibration):
    """Issue 26: a user's criterion is a class, passed to masks, curves, pruning and additivity."""
    import copy

    from designer.pruning.additivity import additivity
    from designer.pruning.criteria import Criterion

    class Smallest(Criterion):  # keeps the smallest weights: the opposite of magnitude
        name = "smallest"

        def importance(self, weight):
            return -weight.detach().abs()

    weight = torch.tensor([[1.0, -3.0, 0.5, 2.0]])
    assert magnitude_mask(weight, 0.5, criterion=Smallest()).tolist() == [[1.0, 0.0, 1.0, 0.0]]  # 1 and 0.5 kept
    assert magnitude_mask(weight, 0.5).tolist() == [[0.0, 1.0, 0.0, 1.0]]  # magnitude: -3 and 2
    curves = distortion_curves(copy.deepcopy(model), calibration, [0, 0.5, 1], criterion=Smallest())
    report = prune_model(copy.deepcopy(model), calibration, method="rd", sparsity=0.5, schedule="one-shot",
                         grid=[0, 0.5, 1], criterion=Smallest())
    assert report.rounds[-1]["kept_weights"] <= report.rounds[-1]["budget"]
    assert len(additivity(copy.deepcopy(model), calibration, curves, samples=2, criterion=Smallest())) == 2
    with pytest.raises(ValueError, match="criterion: must be one of magnitude"):
        magnitude_mask(weight, 0.5, criterion="loudest")


def test_curves_from_a_few_points_measure_those_and_interpolate_the_rest(model, calibration):
    """``points``: the measured grid points equal the full curve's, the others lie between their
    measured neighbours (monotone interpolation never overshoots)."""
    from designer.pruning.curves import default_grid, measured_points
    grid = default_grid(21)
    full = distortion_curves(model, calibration, grid, chunk=8)
    few = distortion_curves(model, calibration, grid, chunk=8, points=5)
    every = distortion_curves(model, calibration, grid, chunk=8, points=len(grid))
    assert [d for c in every.layers for d in c.distortion] == pytest.approx(
        [d for c in full.layers for d in c.distortion], rel=1e-5, abs=1e-9)
    for exact, approx in zip(full.layers, few.layers):
        assert approx.sparsity == exact.sparsity
        kept = [round(exact.weights * (1 - s)) for s in exact.sparsity]
        chosen = set(measured_points(sorted(set(kept), reverse=True), 5))
        measured = [i for i, k in enumerate(kept) if k in chosen and kept.index(k) == i]
        assert measured[0] == 0 and measured[-1] == kept.index(kept[-1]) and len(measured) >= 3
        for i in measured:
            assert approx.distortion[i] == pytest.approx(exact.distortion[i], rel=1e-4, abs=1e-9)
        for lo, hi in zip(measured, measured[1:]):
            ends = sorted((approx.distortion[lo], approx.distortion[hi]))
            assert all(ends[0] * (1 - 1e-9) - 1e-12 <= d <= ends[1] * (1 + 1e-9) + 1e-12
                       for d in approx.distortion[lo:hi + 1])
    with pytest.raises(ValueError, match="points: at least 2"):
        distortion_curves(model, calibration, grid, points=1)


def test_the_correction_loop_never_measures_worse_than_the_plain_allocation(model, calibration):
    from designer.pruning.correction import corrected_allocation, joint_distortion
    grid = [i / 10 for i in range(11)]
    curves = distortion_curves(model, calibration, grid, chunk=4)
    total = sum(c.weights for c in curves.layers)
    result = corrected_allocation(model, calibration, curves, keep_weights=0.2 * total, rounds=3, hardest=3)
    plain = allocate(curves, keep_weights=0.2 * total)
    assert result.rounds[0]["sparsity"] == plain.sparsity  # round 1 is the plain DP
    assert result.measured == min(r["measured"] for r in result.rounds) <= result.rounds[0]["measured"]
    assert result.allocation.kept_weights <= 0.2 * total
    # the measure is the plain one: every layer masked at once, one full forward, batch statistics
    modules = dict(model.named_modules())
    originals = {n: modules[n].weight.detach().clone() for n in result.allocation.sparsity}
    with torch.no_grad(), batch_statistics(model):
        reference = model(calibration)
        for name, s in result.allocation.sparsity.items():
            w = originals[name]
            modules[name].weight.copy_(w * magnitude_mask(w, s, w != 0))
        pruned = model(calibration)
        for name, w in originals.items():
            modules[name].weight.copy_(w)
    plain_measure = float(((pruned - reference) ** 2).flatten(1).mean(1).mean())
    assert result.measured == pytest.approx(plain_measure, rel=1e-5)
    assert joint_distortion(model, calibration, result.allocation.sparsity) == pytest.approx(plain_measure, rel=1e-5)
    assert all(torch.equal(modules[n].weight, w) for n, w in originals.items())  # weights restored


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # vmap's fallback for CPU attention
def test_vit_curves_equal_plain_forwards(calibration):
    """A timm-style ViT (tests/models/vit.py): every Linear of attention and MLP is a layer with a curve,
    and each curve point is the distortion of a plain forward with that layer masked."""
    from tests.models.vit import ViT
    torch.manual_seed(0)
    vit = ViT(image=8, patch=4, in_channels=1, dim=16, depth=1, heads=2, num_classes=5).eval()
    grid = [0.0, 0.5, 0.9]
    curves = distortion_curves(vit, calibration, grid, chunk=2)
    assert [c.name for c in curves.layers] == ["patch_embed", "blocks.0.attn.qkv", "blocks.0.attn.proj",
                                               "blocks.0.mlp.0", "blocks.0.mlp.2", "head"]
    for layer in curves.layers:
        for s, d in zip(grid, layer.distortion):
            assert d == pytest.approx(plain_distortion(vit, calibration, layer.name, s), rel=1e-4, abs=1e-9)
