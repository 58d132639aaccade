"""OBS reconstruction (issue 34, first part): each layer's Hessian, the saliency that chooses a
mask, the re-fit of the kept weights, and the curves measured with the re-fitted weights, each
checked against a computation that does not share its code (least squares, brute force, a
plain forward pass)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from designer.pruning import obs
from designer.pruning.criteria import OBS, magnitude_mask
from designer.pruning.curves import batch_statistics, distortion_curves
from designer.pruning.hessian import layer_hessians
from designer.pruning.measure import distortion

torch.manual_seed(0)


def _linear_problem(rows: int = 4, side: int = 8, samples: int = 64):
    x = torch.randn(samples, side, dtype=torch.float64) @ torch.randn(side, side, dtype=torch.float64)
    w = torch.randn(rows, side, dtype=torch.float64)
    return w, x, (x.T @ x).unsqueeze(0)


def test_the_refit_is_the_least_squares_optimum_for_its_mask():
    w, x, h = _linear_problem()
    mask = torch.rand(w.shape) > 0.5
    mask[:, 0] = True
    fitted = obs.reconstruct(w, mask, h, damp=1e-12)
    for i in range(w.shape[0]):
        kept = torch.nonzero(mask[i]).flatten()
        best = torch.linalg.lstsq(x[:, kept], x @ w[i]).solution  # min ||X_K z - X w||
        assert torch.allclose(fitted[i, kept], best, atol=1e-6)
        assert torch.all(fitted[i, ~mask[i]] == 0)


def test_the_saliency_is_the_error_of_removing_one_weight_with_the_rest_refitted():
    """OBS's w_i^2 / [H^-1]_ii against brute force: each single removal re-fitted by least
    squares; so the weight OBS removes first is the best single removal."""
    w, x, h = _linear_problem(rows=3, side=6)
    salient = obs.saliency(w, h, damp=1e-12)
    for i in range(w.shape[0]):
        errors = []
        for j in range(w.shape[1]):
            kept = [k for k in range(w.shape[1]) if k != j]
            z = torch.linalg.lstsq(x[:, kept], x @ w[i]).solution
            errors.append(float(((x[:, kept] @ z - x @ w[i]) ** 2).sum()))
        assert torch.allclose(salient[i], torch.tensor(errors, dtype=torch.float64), rtol=1e-6)
        assert int(salient[i].argmin()) == min(range(len(errors)), key=errors.__getitem__)


def _refit_error(x: torch.Tensor, w: torch.Tensor, kept: list[int]) -> float:
    """The output error of row ``w`` kept on ``kept`` and re-fitted by least squares (brute force)."""
    if not kept:
        return float(((x @ w) ** 2).sum())
    z = torch.linalg.lstsq(x[:, kept], x @ w).solution
    return float(((x[:, kept] @ z - x @ w) ** 2).sum())


def test_exactobs_greedy_removes_the_best_next_weight_at_every_step():
    """The greedy path (5) against brute force: at every step, of the weights left, the one it
    removes is the one whose removal (all others re-fitted by least squares) costs least, and
    its cost is the rise of the re-fitted error."""
    w, x, h = _linear_problem(rows=3, side=7)
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(h[0]))
    cost, order = obs._greedy_rows(w, inverse)
    for i in range(w.shape[0]):
        path = torch.argsort(order[i]).tolist()
        kept, previous, running = list(range(w.shape[1])), 0.0, 0.0
        for q in path:
            options = {j: _refit_error(x, w[i], [k for k in kept if k != j]) for j in kept}
            assert options[q] == pytest.approx(min(options.values()), rel=1e-6, abs=1e-9)
            running = max(running, options[q] - previous)
            assert float(cost[i, q]) == pytest.approx(running, rel=1e-5, abs=1e-8)
            kept.remove(q)
            previous = options[q]


def test_obs_masks_small_layers_by_the_greedy_path_and_says_so():
    w, _, h = _linear_problem(rows=4, side=16)
    criterion = OBS(damp=1e-6)
    assert criterion.greedy(w, h)
    greedy = criterion.importance(w, h)
    assert torch.equal(greedy, obs.greedy_saliency(w, h, damp=1e-6))
    assert not torch.equal(torch.argsort(greedy.flatten()), torch.argsort(obs.saliency(w, h, 1e-6).flatten()))
    mask = magnitude_mask(w, 0.5, criterion=criterion, hessian=h)
    assert obs.reconstruction_error(w, mask, criterion.pruned(w, mask, h), h, criterion)["greedy"] == 1.0


def test_reconstruction_never_raises_a_rows_error_over_the_plain_mask(monkeypatch):
    """Exact and iterative (conjugate gradients) paths alike: per row, (w' - w) H (w' - w)^T at
    most the masked row's and below it in sum; the exact re-fit at most the iterative one's (it
    is the optimum for the mask) and the iterative one within 0.1% of it."""
    w, x, h = _linear_problem(rows=16, side=300, samples=600)
    mask = magnitude_mask(w, 0.8)
    exact = obs.reconstruct(w, mask, h)
    monkeypatch.setattr(obs, "EXACT_WORK", 0.0)
    iterative = obs.reconstruct(w, mask, h)
    plain = obs.row_errors(w * mask - w, h[0])
    for fitted in (exact, iterative):
        refit = obs.row_errors(fitted - w, h[0])
        assert torch.all(refit <= plain * (1 + 1e-9)) and float(refit.sum()) < 0.9 * float(plain.sum())
        assert torch.all(fitted[~mask] == 0)
    exact_error, iterative_error = obs.row_errors(exact - w, h[0]), obs.row_errors(iterative - w, h[0])
    assert torch.all(exact_error <= iterative_error * (1 + 1e-6))
    assert float(iterative_error.sum()) <= 1.001 * float(exact_error.sum())  # the iterative pass and CG reach (3)


@pytest.mark.parametrize("groups", [1, 2, 8])
def test_a_convs_hessian_measures_its_output_change(groups):
    """(w' - w) H (w' - w)^T summed over rows equals the squared change of the conv's output,
    grouped and depthwise convs included: the unfold's order matches the weight's."""
    conv = nn.Conv2d(8, 8, 3, padding=1, stride=2, groups=groups).double()
    x = torch.randn(5, 8, 9, 9, dtype=torch.float64)
    hessian = layer_hessians(conv, x, [("conv", conv)], chunk=2)["conv"]
    changed = conv.weight.detach() + 0.1 * torch.randn_like(conv.weight)
    delta = (changed - conv.weight.detach()).reshape(8, -1)
    rows = 8 // groups
    predicted = sum(float(obs.row_errors(delta[g * rows:(g + 1) * rows], hessian[g]).sum()) for g in range(groups))
    moved = nn.functional.conv2d(x, changed, None, conv.stride, conv.padding, conv.dilation, groups) - \
        nn.functional.conv2d(x, conv.weight.detach(), None, conv.stride, conv.padding, conv.dilation, groups)
    assert predicted == pytest.approx(float((moved ** 2).sum()), rel=1e-9)
    from designer.pruning.hessian import hessian_bytes  # the estimate before the work: the H it holds
    assert hessian_bytes(conv) == hessian.numel() * hessian.element_size()


def _tiny() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()


def test_an_obs_curve_point_equals_a_plain_forward_with_that_layers_refitted_weights():
    model, inputs = _tiny(), torch.randn(32, 3, 8, 8)
    grid = [0.0, 0.5, 0.9]
    curves = distortion_curves(model, inputs, grid, criterion=OBS())
    layer = dict(model.named_modules())["3"]
    original = layer.weight.detach().clone()
    with batch_statistics(model), torch.no_grad():
        reference = model(inputs)
        hessian = layer_hessians(model, inputs, [("3", layer)])["3"]
        mask = magnitude_mask(original, 0.9, original != 0, OBS(), hessian=hessian)
        with torch.no_grad():
            layer.weight.copy_(OBS().pruned(original, mask, hessian))
        measured = distortion(model(inputs), reference)
    curve = next(c for c in curves.layers if c.name == "3")
    assert curve.distortion[2] == pytest.approx(measured, rel=1e-4)


def test_obs_curves_lie_below_magnitudes_on_a_layer_it_refits():
    model, inputs = _tiny(), torch.randn(32, 3, 8, 8)
    magnitude = distortion_curves(model, inputs, [0.0, 0.7, 0.9])
    refitted = distortion_curves(model, inputs, [0.0, 0.7, 0.9], criterion="obs")
    by_name = {c.name: c for c in magnitude.layers}
    lower = [r.distortion[-1] <= by_name[r.name].distortion[-1] for r in refitted.layers]
    assert sum(lower) >= len(lower) - 1  # a layer's own error is never higher; the logits' almost never


def test_prune_model_with_obs_reaches_the_sparsity_and_keeps_masks():
    from designer.pruning.apply import total_sparsity
    from designer.pruning.prune import prune_model
    model, inputs = _tiny(), torch.randn(32, 3, 8, 8)
    report = prune_model(model, inputs, method="uniform", sparsity=0.6, schedule="one-shot", criterion=OBS())
    assert total_sparsity(model) == pytest.approx(0.6, abs=0.02)
    last = report.rounds[-1]
    assert last["criterion"] == "obs" and set(last["seconds"]) == {"allocation", "masks", "fine-tuning"}
    errors = last["reconstruction_error"]
    assert set(errors) == {"0", "3", "7"} and all(e["kept"] <= e["masked"] + 1e-12 for e in errors.values())


def test_the_correction_loop_measures_the_refitted_weights():
    """rd+c with OBS: the loop's joint measurement of one layer alone equals that layer's OBS
    curve point (both re-fitted from the same H), and a pruning round runs the loop."""
    from designer.pruning.correction import PrunedWeights, joint_distortion
    from designer.pruning.curves import calibration_hessians, prunable_layers
    from designer.pruning.prune import prune_model
    model, inputs = _tiny(), torch.randn(32, 3, 8, 8)
    hessians = calibration_hessians(model, inputs, prunable_layers(model))
    curves = distortion_curves(model, inputs, [0.0, 0.5, 0.8], criterion="obs", hessians=hessians)
    layer = curves.layers[1]
    joint = joint_distortion(model, inputs, {layer.name: layer.sparsity[-1]}, PrunedWeights(OBS(), hessians))
    assert joint == pytest.approx(layer.distortion[-1], rel=1e-5)
    report = prune_model(_tiny(), inputs, method="rd", sparsity=0.5, schedule="one-shot", criterion="obs",
                         correction_rounds=2)
    assert report.rounds[-1]["measured_distortion"] is not None


def test_prune_criterion_obs_on_the_command_line(tmp_path):
    import json

    from typer.testing import CliRunner

    from designer.cli import app
    runner = CliRunner()
    result = runner.invoke(app, ["prune", "--model", "tests/models/cifar.py:small_residual", "--input-shape",
                                 "1,1,8,8", "--dataset", "digits", "--sparsity", "0.7", "--criterion", "obs",
                                 "--grid", "11", "--finetune-epochs", "0", "--out", str(tmp_path / "p.pt"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["criterion"] == "obs" and summary["sparsity"] == pytest.approx(0.7, abs=0.01)


def test_nm_masks_keep_n_of_every_m_input_channels_and_obs_refits_them():
    from designer.pruning.nm import nm_mask, parse_nm, prune_nm
    weight = torch.randn(6, 8, 3, 3)
    mask = nm_mask(weight.abs(), 2, 4)
    groups = mask.permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.all(groups.sum(dim=1) == 2)
    kept = weight.abs().permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.all(torch.where(groups, kept, torch.zeros_like(kept)).sum(1) ==
                     torch.topk(kept, 2, dim=1).values.sum(1))  # the two largest of each four
    with pytest.raises(ValueError, match="--nm: N:M with 0 < N < M"):
        parse_nm("4:2")
    model, inputs = _tiny(), torch.randn(32, 3, 8, 8)
    report = prune_nm(model, inputs, 2, 4, criterion="obs")
    assert report["dense"] == ["0"]  # the stem's 3 input channels
    for name, module in model.named_modules():
        if name in ("3", "7"):
            laid = (module.weight != 0).permute(0, 2, 3, 1) if module.weight.dim() == 4 else module.weight != 0
            assert torch.all(laid.reshape(-1, 4).sum(dim=1) <= 2)
    assert all(e["kept"] <= e["masked"] + 1e-12 for e in report["reconstruction_error"].values())


def test_prune_nm_on_the_command_line(tmp_path):
    import json

    from typer.testing import CliRunner

    from designer.cli import app
    from designer.schemas import NMReport
    runner = CliRunner()
    words = ["prune", "--model", "tests/models/cifar.py:small_residual", "--input-shape", "1,1,8,8", "--dataset",
             "digits", "--nm", "2:4", "--finetune-epochs", "0", "--out", str(tmp_path / "p.pt")]
    result = runner.invoke(app, [*words, "--json"])
    assert result.exit_code == 0, result.output
    NMReport.model_validate(json.loads(result.stdout))
    refused = runner.invoke(app, [*words, "--method", "lamp", "--force"])
    assert refused.exit_code == 2 and "--method: applies only with --mode weights under a budget" in refused.output
    both = runner.invoke(app, [*words, "--sparsity", "0.5", "--force"])
    assert both.exit_code == 2 and "exactly one of --sparsity" in both.output


def test_the_statistics_correction_gives_a_layer_its_output_mean_back():
    """A linear with a bias, pruned and re-fitted: its outputs' mean over the calibration inputs is
    what it was (OBC's statistics correction), where the plain mask moves it."""
    from designer.pruning.apply import apply_sparsity
    torch.manual_seed(3)
    layer = nn.Sequential(nn.Linear(16, 6))
    inputs = torch.randn(200, 16) + 2.0  # inputs with a mean: a pruned weight moves the output's mean
    before = layer(inputs).mean(0).detach()
    means = {}
    hessians = layer_hessians(layer, inputs, [("0", layer[0])], means=means)
    shifted = nn.Sequential(nn.Linear(16, 6))
    shifted.load_state_dict(layer.state_dict())
    apply_sparsity(shifted, {"0": 0.75})  # magnitude, no correction
    assert not torch.allclose(shifted(inputs).mean(0), before, atol=1e-3)
    apply_sparsity(layer, {"0": 0.75}, OBS(), hessians, means=means)
    assert torch.allclose(layer(inputs).mean(0).detach(), before, atol=1e-4)


def test_the_layer_database_on_a_local_dask_cluster_equals_the_serial_one():
    """Issue 34, item 6: each layer's curve a task on a Dask cluster (two worker processes, the
    model's class sent by value), the same curves as computed here."""
    pytest.importorskip("dask.distributed")
    from designer.user_model import load_factory
    torch.manual_seed(3)
    model = load_factory("tests/models/cifar.py:small_residual")().eval()  # a module no worker can import
    assert type(model).__module__.startswith("mpdesign_user_")
    x = torch.randn(16, 1, 8, 8)
    settings = {"grid": [0.0, 0.5, 0.8, 0.9], "criterion": OBS(), "points": 3}
    serial = distortion_curves(model, x, **settings)
    remote = distortion_curves(model, x, scheduler=None, **settings)
    assert [c.name for c in remote.layers] == [c.name for c in serial.layers]
    for a, b in zip(serial.layers, remote.layers):
        assert a.sparsity == b.sparsity
        assert a.distortion == pytest.approx(b.distortion, rel=1e-5, abs=1e-9)


def test_a_layer_with_an_input_that_is_always_zero_is_damped_and_reported():
    """H is singular where an input never fires: the re-fit stays finite and the report says so."""
    layer = nn.Linear(6, 4).double()
    x = torch.randn(50, 6, dtype=torch.float64)
    x[:, 2] = 0.0
    h = layer_hessians(layer, x, [("fc", layer)])["fc"]
    mask = magnitude_mask(layer.weight.detach(), 0.5)
    new = OBS().pruned(layer.weight.detach(), mask, h)
    assert torch.isfinite(new).all()
    report = obs.reconstruction_error(layer.weight.detach(), mask, new, h, OBS())
    assert report["dead_inputs"] == 1.0 and report["kept"] <= report["masked"] + 1e-12
