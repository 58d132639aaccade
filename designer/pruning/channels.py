"""Channel pruning with the same curves-plus-DP machinery, giving a physically smaller network.

Prunable channel groups are the inner widths ``btn`` of each stage: they feed no residual
addition, so every block may drop its own channels as long as the stage keeps one count (the
spec has one ``btn`` per stage). Stage outputs are tied by the residual additions across the
whole stage and the next one, and stay as they are.

Within a block, channels are ranked by the L1 norm of the filters that produce them:
``conv1`` for the first inner width, and for ``bottleneck`` blocks ``conv2`` for the second
(both sized ``btn``); an ``inverted`` block keeps its expanded channels through the depthwise
conv and squeeze-excite, whose hidden width becomes ``btn // 4`` of the new width (its units
ranked by the L1 norm of their reduce filters).

For every group and every kept fraction on a grid, the smaller network is really built
(:func:`shrink`) and its logits compared with the original's on the calibration batch
(BatchNorm statistics of the batch, as for weight curves). Costs per option are exact
(:func:`designer.costs.count` of the smaller spec, whose changes are additive across stages),
so the knapsack DP picks one width per stage under a budget on parameters or MACs.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from designer.costs import count, se_channels
from designer.network import Network, build
from designer.pruning.curves import batch_statistics
from designer.spec import NetworkSpec
from solvers.knapsack import solve_dp


def _top(scores: torch.Tensor, n: int) -> torch.Tensor:
    return torch.sort(torch.topk(scores, n).indices).values


def _take(conv: nn.Conv2d, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None, target: nn.Conv2d) -> None:
    weight = conv.weight.detach()
    if out_idx is not None:
        weight = weight[out_idx]
    if in_idx is not None and conv.groups == 1:
        weight = weight[:, in_idx]
    target.weight.copy_(weight)
    if conv.bias is not None:
        target.bias.copy_(conv.bias.detach() if out_idx is None else conv.bias.detach()[out_idx])


def _take_bn(bn: nn.BatchNorm2d, idx: torch.Tensor | None, target: nn.BatchNorm2d) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(bn, name).detach()
        getattr(target, name).copy_(value if idx is None else value[idx])
    target.num_batches_tracked.copy_(bn.num_batches_tracked)


@torch.no_grad()
def shrink(model: Network, widths: dict[int, int]) -> Network:
    """A new network with stage ``i``'s inner width set to ``widths[i]``, the strongest
    channels of every block kept and their weights copied in."""
    data = model.spec.to_dict()
    for i, width in widths.items():
        if not 1 <= width <= data["stages"][i]["btn"]:
            raise ValueError(f"stages[{i}].btn: can keep 1 to {data['stages'][i]['btn']} channels, got {width}")
        data["stages"][i]["btn"] = width
    small = build(NetworkSpec.from_dict(data))
    small.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("stages.")}, strict=False)
    for i, (stage, new_stage) in enumerate(zip(model.stages, small.stages)):
        family = model.spec.stages[i].family
        n = widths.get(i, model.spec.stages[i].btn)
        for block, new in zip(stage, new_stage):
            if n == model.spec.stages[i].btn:
                new.load_state_dict(block.state_dict())
                continue
            first = _top(block.conv1.conv.weight.abs().flatten(1).sum(1), n)
            _take(block.conv1.conv, first, None, new.conv1.conv)
            _take_bn(block.conv1.bn, first, new.conv1.bn)
            if family == "basic":
                _take(block.conv2.conv, None, first, new.conv2.conv)
                _take_bn(block.conv2.bn, None, new.conv2.bn)
            elif family == "bottleneck":
                second = _top(block.conv2.conv.weight[:, first].abs().flatten(1).sum(1), n)
                _take(block.conv2.conv, second, first, new.conv2.conv)
                _take_bn(block.conv2.bn, second, new.conv2.bn)
                _take(block.conv3.conv, None, second, new.conv3.conv)
                _take_bn(block.conv3.bn, None, new.conv3.bn)
            else:  # inverted: the same channels through the depthwise conv and squeeze-excite
                _take(block.conv2.conv, first, None, new.conv2.conv)
                _take_bn(block.conv2.bn, first, new.conv2.bn)
                hidden = _top(block.se.reduce.weight[:, first].abs().flatten(1).sum(1), se_channels(n))
                _take(block.se.reduce, hidden, first, new.se.reduce)
                _take(block.se.expand, first, hidden, new.se.expand)
                _take(block.conv3.conv, None, first, new.conv3.conv)
                _take_bn(block.conv3.bn, None, new.conv3.bn)
            if hasattr(block, "shortcut"):
                new.shortcut.load_state_dict(block.shortcut.state_dict())
    return small.train(model.training)


@dataclass
class ChannelCurve:
    stage: int
    widths: list[int]
    distortion: list[float]
    params: list[int]  # the whole network's, with this stage at that width
    macs: list[int]


@torch.no_grad()
def channel_curves(model: Network, inputs: torch.Tensor, fractions: list[float] | None = None) -> list[ChannelCurve]:
    fractions = fractions or [i / 20 for i in range(1, 21)]
    model.eval()
    with batch_statistics(model):
        reference = model(inputs)
    curves = []
    for i, stage in enumerate(model.spec.stages):
        widths = sorted({max(1, round(f * stage.btn)) for f in fractions} | {stage.btn})
        curve = ChannelCurve(i, widths, [], [], [])
        for width in widths:
            small = shrink(model, {i: width}).eval()
            with batch_statistics(small):
                curve.distortion.append(float(((small(inputs) - reference) ** 2).flatten(1).mean(1).mean()))
            costs = count(small.spec)
            curve.params.append(costs.params)
            curve.macs.append(costs.macs)
        curves.append(curve)
    return curves


@dataclass
class ChannelPruning:
    model: Network
    widths: dict[int, int]
    predicted_distortion: float
    params: int
    macs: int


def prune_channels(model: Network, inputs: torch.Tensor, max_params: float | None = None,
                   max_macs: float | None = None, fractions: list[float] | None = None) -> ChannelPruning:
    """The smaller network minimising summed distortion with at most ``max_params``
    parameters or ``max_macs`` MACs (exactly one; whole-network counts)."""
    if (max_params is None) == (max_macs is None):
        raise ValueError("give exactly one of max_params and max_macs")
    curves = channel_curves(model, inputs, fractions)
    key, budget = ("params", max_params) if max_params is not None else ("macs", max_macs)
    full = getattr(count(model.spec), key)
    totals = [c.params if key == "params" else c.macs for c in curves]  # whole network, one stage changed
    # stages change disjoint layers, so a combination costs full + sum_j (total_j(w_j) - full);
    # the knapsack takes each option's excess over its stage's narrowest width
    floors = [min(t) for t in totals]
    smallest = full + sum(f - full for f in floors)
    if budget < smallest:
        raise ValueError(f"max_{key}: {budget:g} is below the smallest network channel pruning can reach "
                         f"({smallest:,} {key}, every inner width at its smallest)")
    result = solve_dp([[x - f for x in t] for t, f in zip(totals, floors)], [c.distortion for c in curves],
                      budget - smallest, bins=20_000)
    widths = {c.stage: c.widths[i] for c, i in zip(curves, result.solution)}
    small = shrink(model, widths)
    recount = count(small.spec)
    return ChannelPruning(small, widths, result.objective, recount.params, recount.macs)


def latency(model: nn.Module, inputs: torch.Tensor, repeats: int = 20) -> float:
    """Median seconds of a forward pass (eval, no autograd) after two warm-ups."""
    model = copy.deepcopy(model).eval()
    times = []
    with torch.inference_mode():
        for i in range(repeats + 2):
            start = time.perf_counter()
            model(inputs)
            if i >= 2:
                times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
