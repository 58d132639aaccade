"""Channel pruning with the same curves-plus-DP machinery, giving a physically smaller network.

Prunable channel groups are the inner widths ``btn`` of each stage: they feed no residual
addition, so every block may drop its own channels as long as the stage keeps one count (the
spec has one ``btn`` per stage). Stage outputs are tied by the residual additions across the
whole stage and the next one, and stay as they are.

Within a block, channels are ranked by the L1 norm of the filters that produce them; each
block family says which (:meth:`designer.families.base.BlockFamily.shrink`).

For every group and every kept fraction on a grid, the smaller network is really built
(:func:`shrink`) and its logits compared with the original's on the calibration batch
(BatchNorm statistics of the batch, as for weight curves). Costs per option are exact
(:func:`designer.costs.count` of the smaller spec, whose changes are additive across stages),
so the knapsack DP picks one width per stage under a budget on parameters or MACs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from designer.costs import count
from designer.families import family
from designer.network import Network, build
from designer.pruning.curves import batch_statistics
from designer.pruning.groups import ChannelPruning
from designer.pruning.measure import distortion
from designer.spec import NetworkSpec
from solvers.knapsack import solve_dp


@torch.no_grad()
def shrink(model: Network, widths: dict[int, int]) -> Network:
    """A new network with stage ``i``'s inner width set to ``widths[i]``, the strongest
    channels of every block kept and their weights copied in."""
    data = model.spec.to_dict()
    for i, width in widths.items():
        if not 1 <= width <= data["stages"][i]["btn"]:
            raise ValueError(f"stages[{i}].btn: can keep 1 to {data['stages'][i]['btn']} channels, got {width}")
        data["stages"][i]["btn"] = width
    small = build(NetworkSpec.from_dict(data)).to(next(model.parameters()).device)
    small.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("stages.")}, strict=False)
    for i, (stage, new_stage) in enumerate(zip(model.stages, small.stages)):
        blocks = family(model.spec.stages[i].family)
        n = widths.get(i, model.spec.stages[i].btn)
        for block, new in zip(stage, new_stage):
            if n == model.spec.stages[i].btn:
                new.load_state_dict(block.state_dict())
            else:
                blocks.shrink(block, new, n)
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
                curve.distortion.append(distortion(small(inputs), reference))
            costs = count(small.spec)
            curve.params.append(costs.params)
            curve.macs.append(costs.macs)
        curves.append(curve)
    return curves


def prune_stage_widths(model: Network, inputs: torch.Tensor, max_params: float | None = None,
                   max_macs: float | None = None, fractions: list[float] | None = None) -> ChannelPruning:
    """The smaller network minimising summed distortion with at most ``max_params``
    parameters or ``max_macs`` MACs (exactly one; whole-network counts)."""
    if (max_params is None) == (max_macs is None):
        raise ValueError("give exactly one of max_params and max_macs")
    start, dense = time.perf_counter(), count(model.spec)
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
    return ChannelPruning(small, {f"stages[{i}].btn": w for i, w in widths.items()}, recount.params, recount.macs,
                          dense.params, dense.macs, predicted_distortion=result.objective, curves=curves,
                          seconds=time.perf_counter() - start)
