"""Channels with reconstruction (designer.pruning.refit): a consumer of cut channels is re-fitted
to the least-squares optimum on the calibration data, checked against ``torch.linalg.lstsq`` on
its real inputs; the channel pruner with ``criterion=OBS()`` uses it for every candidate."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from designer.pruning.criteria import OBS
from designer.pruning.curves import batch_statistics
from designer.pruning.groups import Refit, _prune_copy, count_costs, prune_channels
from designer.pruning.refit import Cuts, consumers, refit
from tests.models.cifar import CifarResNet


def _model() -> CifarResNet:
    torch.manual_seed(0)
    model = CifarResNet(depths=(1, 1), widths=(8, 12), num_classes=5)
    for module in model.modules():  # BN statistics of a trained net, not identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _inputs(model: torch.nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """The unfolded inputs of ``name`` in ``model`` on ``x``, (positions, side)."""
    seen = []
    module = model.get_submodule(name)
    handle = module.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    with torch.no_grad(), batch_statistics(model):  # BatchNorm as the Hessians are measured
        model(x)
    handle.remove()
    columns = F.unfold(seen[0], module.kernel_size, padding=module.padding, stride=module.stride)
    return columns.transpose(1, 2).reshape(-1, columns.shape[1]).double()


def _cut(model: torch.nn.Module, x: torch.Tensor, root: str, indices: list[int]):
    """A copy of ``model`` with ``root``'s group losing ``indices`` (no re-fit), and its cuts."""
    import copy

    import torch_pruning as tp
    pruned, cuts = copy.deepcopy(model), Cuts()
    graph = tp.DependencyGraph().build_dependency(pruned, example_inputs=x[:1])
    group = graph.get_pruning_group(pruned.get_submodule(root), tp.prune_conv_out_channels, idxs=indices)
    cuts.record(group, {m: n for n, m in pruned.named_modules()})
    group.prune()
    return pruned, cuts


def test_a_consumer_is_refitted_to_the_least_squares_optimum_on_its_real_inputs():
    model, x = _model(), torch.randn(24, 3, 16, 16)
    consumer = "layers.0.0.conv2"
    pruned, cuts = _cut(model, x, "layers.0.0.conv1", [1, 4, 6])
    assert cuts.inputs[consumer] == {1, 4, 6} and cuts.outputs["layers.0.0.conv1"] == {1, 4, 6}
    plain = pruned.get_submodule(consumer).weight.detach().double().reshape(8, -1).clone()
    assert refit(model, pruned, cuts, Refit.measure(model, x).hessians, damp=1e-10) == [consumer]
    # the dense layer's outputs, and the least-squares fit of them from the inputs left
    target = _inputs(model, consumer, x) @ model.get_submodule(consumer).weight.detach().double().reshape(8, -1).T
    kept_inputs = _inputs(pruned, consumer, x)
    best = torch.linalg.lstsq(kept_inputs, target).solution.T
    got = pruned.get_submodule(consumer).weight.detach().double().reshape(8, -1)
    assert torch.allclose(got, best, rtol=1e-4, atol=1e-6)
    error = lambda w: float(((kept_inputs @ w.T - target) ** 2).sum())  # noqa: E731
    assert error(got) < 0.99 * error(plain)


def test_cuts_are_recorded_as_dense_indices_when_a_layer_is_cut_twice():
    model, x = _model(), torch.randn(4, 3, 16, 16)
    import torch_pruning as tp
    pruned, cuts = _cut(model, x, "layers.0.0.conv1", [1, 4])
    graph = tp.DependencyGraph().build_dependency(pruned, example_inputs=x[:1])
    group = graph.get_pruning_group(pruned.get_submodule("layers.0.0.conv1"), tp.prune_conv_out_channels,
                                    idxs=[1, 4])  # now channels 2 and 6 of the dense layer
    cuts.record(group, {m: n for n, m in pruned.named_modules()})
    assert cuts.inputs["layers.0.0.conv2"] == {1, 2, 4, 6}


def test_a_residual_cut_refits_every_block_reading_the_stream_and_keeps_the_outputs_closer():
    model, x = _model(), torch.randn(32, 3, 16, 16)
    fit = Refit.measure(model, x)
    with torch.no_grad(), batch_statistics(model):
        reference = model(x)
    errors = {}
    for name, f in (("plain", None), ("refit", fit)):
        pruned = _prune_copy(model, x[:1], {"conv1": [0, 3, 5]}, f)
        with torch.no_grad(), batch_statistics(pruned):
            errors[name] = float(((pruned(x) - reference) ** 2).mean())
    assert errors["refit"] < errors["plain"]
    names = [n for n, _ in consumers(model)]
    assert "layers.0.0.conv1" in names and "fc" in names


def test_channel_pruning_with_obs_meets_the_budget_and_differs_from_magnitude():
    model, x = _model(), torch.randn(32, 3, 16, 16)
    results = {name: prune_channels(model, x[:1], x, max_macs=0.5 * count_costs(model, x)[1],
                                        criterion=criterion)
               for name, criterion in (("magnitude", "magnitude"), ("obs", OBS()))}
    for result in results.values():
        assert result.macs <= 0.5 * result.macs_dense
    first = results["magnitude"].curves[0]
    second = results["obs"].curves[0]
    assert first.kept == second.kept and first.distortion != second.distortion


def test_channel_budgets_are_taken_as_prune_model_takes_them():
    """Issue 38: keep_macs and sparsity as fractions, as prune_model takes them, beside the counts."""
    model, x = _model(), torch.randn(16, 3, 16, 16)
    params0, macs0 = count_costs(model, x)
    by_fraction = prune_channels(model, x[:1], x, keep_macs=0.5)
    by_count = prune_channels(model, x[:1], x, max_macs=0.5 * macs0)
    assert by_fraction.kept == by_count.kept and by_fraction.macs <= 0.5 * macs0
    assert prune_channels(model, x[:1], x, sparsity=0.4).params <= 0.6 * params0
    import pytest
    with pytest.raises(ValueError, match="exactly one budget"):
        prune_channels(model, x[:1], x, keep_macs=0.5, max_params=100)
