"""Regression tests for three bugs that changed results without a word (issue 11):
curves on a user's own module, kept weights over the budget, and the default stage weights."""

import copy

import pytest
import torch
from torch import nn

from designer import zoo
from designer.design.problem import DesignProblem
from designer.entropy import deepmad_scores, default_alpha
from designer.pruning.allocate import METHODS
from designer.pruning.apply import apply_sparsity, total_sparsity
from designer.pruning.criteria import magnitude_mask
from designer.pruning.curves import batch_statistics, distortion_curves, prunable_layers
from designer.pruning.prune import prune_model
from designer.report import inspect_spec
from designer.spec import NetworkSpec, Stage, Stem
from tests.models.cifar import small_residual


def user_models():
    torch.manual_seed(0)
    resnet = small_residual(num_classes=5)  # a torchvision-style residual CNN with BN, by hand
    for m in resnet.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    sequential = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 8, 3),
                               nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    return {"residual-cnn": resnet.eval(), "sequential": sequential.eval()}


CALIBRATION = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(3))


def masked_copy_distortion(model, x, name, sparsity):
    """The definition on a copy of the model: mask one layer, plain forwards with batch statistics."""
    pruned = copy.deepcopy(model)
    module = dict(pruned.named_modules())[name]
    with torch.no_grad():
        module.weight.mul_(magnitude_mask(module.weight, sparsity, module.weight != 0))
        with batch_statistics(model):
            reference = model(x)
        with batch_statistics(pruned):
            out = pruned(x)
    return float(((out - reference) ** 2).flatten(1).mean(1).mean())


@pytest.mark.parametrize("kind", ["residual-cnn", "sequential"])
def test_curves_on_user_modules_equal_masked_copies(kind):
    model = user_models()[kind]
    grid = [0.0, 0.25, 0.5, 0.75, 0.9, 1.0]
    curves = distortion_curves(model, CALIBRATION, grid, chunk=4)
    assert [c.name for c in curves.layers] == [n for n, _ in prunable_layers(model)]
    for layer in curves.layers:
        assert layer.distortion[0] == pytest.approx(0.0, abs=1e-10)
        for s, d in zip(grid[1:], layer.distortion[1:]):
            expected = masked_copy_distortion(model, CALIBRATION, layer.name, s)
            assert expected > 0  # pruning a layer alone moves the logits
            assert d == pytest.approx(expected, rel=1e-4, abs=1e-9)


def test_a_curve_point_keeps_what_the_applied_mask_keeps():
    model = user_models()["residual-cnn"]
    curves = distortion_curves(model, CALIBRATION, [0.0, 0.5, 0.9, 0.99, 1.0])
    for layer in curves.layers:
        for s in layer.sparsity:
            target = copy.deepcopy(model)
            apply_sparsity(target, {layer.name: s})
            module = dict(target.named_modules())[layer.name]
            assert int(module.weight_mask.sum()) == round(layer.weights * (1 - s))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.95])
def test_every_method_keeps_at_most_the_budget(method, sparsity):
    model = copy.deepcopy(user_models()["residual-cnn"])
    total = sum(m.weight.numel() for _, m in prunable_layers(model))
    report = prune_model(model, CALIBRATION, method=method, sparsity=sparsity, schedule="one-shot",
                         grid=[i / 40 for i in range(41)])
    kept = sum(int((m.weight != 0).sum()) for _, m in prunable_layers(model))
    budget = int(total * (1 - sparsity) + 1e-6)
    assert kept <= budget
    assert report.rounds[-1]["kept_weights"] == kept
    assert report.rounds[-1]["sparsity"] == pytest.approx(total_sparsity(model))
    if sparsity == 0.0:
        assert kept == total  # a zero target removes nothing
    else:  # every method lands at the budget, give or take a layer's rounding
        assert kept >= budget - len(prunable_layers(model)) - 1 or method.startswith("rd")


def test_default_stage_weights_follow_the_network():
    tiny = zoo.load("tiny-cifar")
    scores = deepmad_scores(tiny)
    assert scores.alpha == default_alpha(len(scores.stage_ends))
    assert scores.alpha[-1] == 8.0 and all(a == 1.0 for a in scores.alpha[:-1])
    assert inspect_spec(tiny)["deepmad_score"] == pytest.approx(scores.score)
    three = NetworkSpec(resolution=32, stem=Stem(16, 3, 1), num_classes=10,
                        stages=[Stage("bottleneck", 32, 16, 3, 1, 1), Stage("bottleneck", 64, 24, 3, 2, 2),
                                Stage("bottleneck", 128, 32, 3, 2, 2)])
    assert deepmad_scores(three).alpha == (1.0, 1.0, 8.0)
    assert deepmad_scores(zoo.load("deepmad-r50")).alpha == (1.0, 1.0, 1.0, 1.0, 8.0)
    problem = DesignProblem(resolution=32, num_classes=10, strides=[1, 1, 2, 2], max_params=2e5)
    assert problem.stage_alpha == [1.0, 1.0, 8.0]
    with pytest.raises(ValueError, match="alpha"):
        deepmad_scores(three, alpha=[1.0, float("nan"), 8.0])
