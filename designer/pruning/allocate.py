"""Choose every layer's sparsity: rate-distortion allocation on the curves (knapsack DP) and
the baselines (global magnitude, uniform, uniform+, ERK, LAMP), all returning
``{layer name: sparsity}``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from designer import checks
from designer.pruning.criteria import kept_count
from designer.pruning.curves import Curves, prunable_layers
from designer.schemas import FORMAT_VERSION
from solvers.knapsack import solve_dp, solve_lagrangian
from solvers.result import SolveResult, Status



@dataclass
class Allocation:
    sparsity: dict[str, float]
    distortion: float | None  # summed single-layer distortions (rd only)
    kept_weights: float
    kept_macs: float
    solve: SolveResult | None = None

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "sparsity": self.sparsity, "distortion": self.distortion,
                "kept_weights": self.kept_weights, "kept_macs": self.kept_macs}


def allocate(curves: Curves, keep_weights: float | None = None, keep_macs: float | None = None,
             method: str = "dp", bins: int | None = 20_000) -> Allocation:
    """Minimise the summed distortion with at most ``keep_weights`` kept weights or at most
    ``keep_macs`` kept MACs (exactly one), one grid point per layer. ``method``: ``dp``
    (binned dynamic program; ``bins=None`` for the exact integer state) or ``slope``."""
    if (keep_weights is None) == (keep_macs is None):
        raise ValueError("allocate: give exactly one of keep_weights and keep_macs")
    by_macs = keep_macs is not None
    checks.number(keep_macs if by_macs else keep_weights, "keep_macs" if by_macs else "keep_weights", minimum=0)
    checks.choice(method, "method", ("dp", "slope"))
    if bins is not None:
        checks.integer(bins, "bins", minimum=1)
    budget = float(keep_macs if by_macs else keep_weights)
    scale = [layer.macs / layer.weights if by_macs else 1.0 for layer in curves.layers]
    costs = [[w * f for w in layer.kept_weights()] for layer, f in zip(curves.layers, scale)]
    if bins is None:
        costs = [[round(c) for c in group] for group in costs]
        budget = math.floor(budget)
    losses = [layer.distortion for layer in curves.layers]
    if method == "dp":
        result = solve_dp(costs, losses, budget, bins=bins)
    elif method == "slope":
        result = solve_lagrangian(costs, losses, budget)
    else:
        raise ValueError(f"method: must be dp or slope, got {method!r}")
    if result.status == Status.INFEASIBLE:
        unit = "MACs" if by_macs else "weights"
        raise ValueError(f"keep_{'macs' if by_macs else 'weights'}: {budget:g} is below the {unit} the layers keep "
                         f"at their highest sparsities ({sum(min(c) for c in costs):g})")
    picks = result.solution
    sparsity = {layer.name: layer.sparsity[i] for layer, i in zip(curves.layers, picks)}
    kept_w = sum(layer.kept_weights()[i] for layer, i in zip(curves.layers, picks))
    kept_m = sum(layer.kept_weights()[i] * layer.macs / layer.weights for layer, i in zip(curves.layers, picks))
    return Allocation(sparsity, result.objective, kept_w, kept_m, result)


# ---- baselines: same interface, a target overall sparsity of the prunable weights ------------
def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: module.weight.detach() for name, module in prunable_layers(model)}


def _from_threshold(scores: dict[str, torch.Tensor], sparsity: float) -> dict[str, float]:
    flat = torch.cat([s.flatten() for s in scores.values()])
    k = int(math.floor(sparsity * flat.numel()))
    if k == 0:
        return {name: 0.0 for name in scores}
    threshold = torch.kthvalue(flat, k).values
    return {name: float((s <= threshold).sum()) / s.numel() for name, s in scores.items()}


def global_magnitude(model: nn.Module, sparsity: float) -> dict[str, float]:
    return _from_threshold({n: w.abs() for n, w in _weights(model).items()}, sparsity)


def lamp(model: nn.Module, sparsity: float) -> dict[str, float]:
    """LAMP (Lee et al., 2021): score(u) = w_u^2 / sum of w_v^2 over weights v of the same layer
    at least as large; one global threshold on the scores."""
    scores = {}
    for name, weight in _weights(model).items():
        squared = weight.flatten() ** 2
        order = torch.argsort(squared)
        sorted_sq = squared[order]
        tail = torch.flip(torch.cumsum(torch.flip(sorted_sq, [0]), 0), [0])
        score = torch.empty_like(squared)
        score[order] = sorted_sq / tail.clamp_min(1e-30)
        scores[name] = score.reshape(weight.shape)
    return _from_threshold(scores, sparsity)


def uniform(model: nn.Module, sparsity: float) -> dict[str, float]:
    return {name: sparsity for name in _weights(model)}


def _fill(sizes: dict[str, int], fixed: dict[str, float], sparsity: float) -> dict[str, float]:
    """Give the layers not in ``fixed`` one common sparsity so the total meets ``sparsity``."""
    total = sum(sizes.values())
    removed_fixed = sum(sizes[n] * s for n, s in fixed.items())
    free = total - sum(sizes[n] for n in fixed)
    common = min(1.0, max(0.0, (sparsity * total - removed_fixed) / free)) if free else 0.0
    return {name: fixed.get(name, common) for name in sizes}


def uniform_plus(model: nn.Module, sparsity: float) -> dict[str, float]:
    """Uniform, but the first layer stays dense and the last keeps at least 20% (Gale et al.)."""
    sizes = {n: w.numel() for n, w in _weights(model).items()}
    names = list(sizes)
    allocation = _fill(sizes, {names[0]: 0.0}, sparsity)
    if allocation[names[-1]] > 0.8:
        allocation = _fill(sizes, {names[0]: 0.0, names[-1]: 0.8}, sparsity)
    return allocation


def erk(model: nn.Module, sparsity: float) -> dict[str, float]:
    """Erdos-Renyi-Kernel (Evci et al., 2020): density proportional to
    (c_in + c_out + k_h + k_w) / (c_in c_out k_h k_w), scaled to the target; layers that would
    exceed density 1 are dense and the rest rescaled."""
    weights = _weights(model)
    raw = {}
    for name, w in weights.items():
        dims = list(w.shape) + [1] * (4 - w.dim())
        raw[name] = sum(dims) / math.prod(dims)
    sizes = {n: w.numel() for n, w in weights.items()}
    dense: set[str] = set()
    target_kept = (1 - sparsity) * sum(sizes.values())
    while True:
        budget = target_kept - sum(sizes[n] for n in dense)
        scale = budget / sum(raw[n] * sizes[n] for n in sizes if n not in dense)
        over = {n for n in sizes if n not in dense and raw[n] * scale > 1}
        if not over:
            break
        dense |= over
    return {n: 0.0 if n in dense else 1 - raw[n] * scale for n in sizes}


def within_budget(model: nn.Module, sparsity: dict[str, float], keep_weights: int) -> dict[str, float]:
    """``sparsity`` adjusted so that the masks :func:`~designer.pruning.apply.apply_sparsity`
    makes keep at most ``keep_weights`` weights in all.

    A baseline's rule sets per-layer fractions; the one-weight-per-output-channel floor (and
    rounding) can make the masks keep more than the budget. The excess is taken from the layers
    above their floor, in proportion to what each keeps above it (largest remainders first), so
    every method is compared at the same kept count."""
    layers = dict(prunable_layers(model))
    counts, floors = {}, {}
    for name, target in sparsity.items():
        weight = layers[name].weight.detach()
        current = weight != 0
        counts[name] = kept_count(weight, target, current)
        floors[name] = kept_count(weight, 1.0, current)
    others = sum(int((m.weight != 0).sum()) for n, m in layers.items() if n not in sparsity)
    excess = sum(counts.values()) + others - keep_weights
    if excess <= 0:
        return {name: 1 - counts[name] / layers[name].weight.numel() for name in sparsity}
    slack = {name: counts[name] - floors[name] for name in counts}
    total_slack = sum(slack.values())
    if total_slack < excess:
        smallest = sum(floors.values()) + others
        raise ValueError(f"keep_weights: {keep_weights:,} is below the {smallest:,} weights pruning must keep (one "
                         f"per output channel); the highest reachable sparsity keeps {smallest:,}")
    shares = {name: excess * slack[name] / total_slack for name in counts}
    cut = {name: int(math.floor(share)) for name, share in shares.items()}
    for name in sorted(counts, key=lambda n: (cut[n] - shares[n], n))[:excess - sum(cut.values())]:
        cut[name] += 1
    return {name: 1 - (counts[name] - cut[name]) / layers[name].weight.numel() for name in sparsity}


# Allocation baselines by name: a new one is a function (model, sparsity) -> {layer: sparsity}
# and one entry here; prune_model, the CLI and the benchmark take it from this table.
BASELINES = {"global": global_magnitude, "lamp": lamp, "uniform": uniform, "uniform+": uniform_plus, "erk": erk}
METHODS = ("rd", "rd-slope", *BASELINES)
