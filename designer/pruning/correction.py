"""The correction loop: allocate on the curves, measure what the allocation really does, correct
the curves where they were wrong, allocate again, and keep what measures best.

The DP minimises the *summed* single-layer distortions sum_l C_l(s_l). Distortion is
super-additive when several layers are pruned hard (the pruning benchmark measures joint /
summed around 1.1-1.25 at 90%), so the DP's optimum for the sum need not be the allocation with
the least joint distortion D(s). Round r, with per-layer factors g_l (1 at the start):

    s^r      = argmin_s sum_l g_l C_l(s_l)   subject to the budget       (the knapsack DP)
    D(s^r)   measured: every layer pruned at once (re-fitted by OBS where the criterion is OBS,
             as its curves are), logit MSE on the calibration batch with BatchNorm batch
             statistics (the curves' own measure, designer.pruning.measure)
    m_l      = D(s^r) - D(s^r with layer l dense)     for the ``hardest`` layers with the
             largest g_l C_l(s^r_l): layer l's real marginal distortion
    g_l     <- clip(m_l / C_l(s^r_l), 1 / MAX_FACTOR, MAX_FACTOR)

The loop stops after ``rounds`` rounds, or when an allocation repeats; the result is the
allocation with the smallest *measured* D over every round, the plain DP's included, so the
loop never returns an allocation that measures worse than the one it started from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from designer.pruning.allocate import Allocation, allocate
from designer.pruning.criteria import MAGNITUDE, Criterion, criterion_of, importance_of, magnitude_mask
from designer.pruning.curves import Curves, LayerCurve, batch_statistics, prunable_layers
from designer.pruning.measure import distortion

MAX_FACTOR = 8.0  # how far one measurement may scale a layer's curve (a noisy marginal stays bounded)


class PrunedWeights:
    """Each layer's weights at a sparsity under a criterion (re-fitted where it re-fits, from the
    layers' ``hessians``), computed once per (layer, sparsity), from the layer's importance
    computed once (or given, as ``importances``): the loop measures the same layers at the same
    points again and again."""

    def __init__(self, criterion: Criterion | str = MAGNITUDE, hessians: dict[str, torch.Tensor] | None = None,
                 importances: dict[str, torch.Tensor] | None = None):
        self.criterion, self.hessians = criterion_of(criterion), hessians or {}
        self.importances = dict(importances or {})
        self._done: dict[tuple[str, float], torch.Tensor] = {}

    def __call__(self, name: str, weight: torch.Tensor, sparsity: float) -> torch.Tensor:
        if (name, sparsity) not in self._done:
            h = self.hessians.get(name)
            if name not in self.importances:
                self.importances[name] = importance_of(self.criterion, weight, h)
            mask = magnitude_mask(weight, sparsity, weight != 0, self.criterion, importance=self.importances[name])
            self._done[(name, sparsity)] = self.criterion.pruned(weight, mask, h)
        return self._done[(name, sparsity)]


@torch.no_grad()
def joint_distortion(model: nn.Module, inputs: torch.Tensor, sparsity: dict[str, float],
                     criterion: Criterion | str | PrunedWeights = MAGNITUDE,
                     reference: torch.Tensor | None = None) -> float:
    """The logit MSE of ``model`` with every named layer pruned to its sparsity at once, against
    the unpruned model, with BatchNorm batch statistics (as the curves measure); the weights are
    restored after. ``criterion``: a criterion, or the :class:`PrunedWeights` of one (OBS's
    re-fitted weights)."""
    pruned = criterion if isinstance(criterion, PrunedWeights) else PrunedWeights(criterion)
    modules = dict(prunable_layers(model))
    originals = {name: modules[name].weight.detach().clone() for name in sparsity}
    model.eval()
    try:
        with batch_statistics(model):
            reference = model(inputs) if reference is None else reference
            for name, s in sparsity.items():
                modules[name].weight.copy_(pruned(name, originals[name], s))
            return distortion(model(inputs), reference)
    finally:
        for name, w in originals.items():
            modules[name].weight.copy_(w)


@dataclass
class Corrected:
    """The allocation kept, its measured joint distortion, and every round's allocation with its
    distortion predicted by the uncorrected curves, measured, and the factors it was made with."""

    allocation: Allocation
    measured: float
    rounds: list[dict]


def _scaled(curves: Curves, factors: dict[str, float]) -> Curves:
    return Curves([LayerCurve(c.name, c.weights, c.macs, c.sparsity, [factors[c.name] * d for d in c.distortion])
                   for c in curves.layers])


def _single(curves: Curves, sparsity: dict[str, float]) -> dict[str, float]:
    """Each layer's own (uncorrected) distortion at its allocated grid point, C_l(s_l)."""
    return {c.name: c.distortion[c.sparsity.index(sparsity[c.name])] for c in curves.layers}


@torch.no_grad()
def corrected_allocation(model: nn.Module, inputs: torch.Tensor, curves: Curves, keep_weights: float | None = None,
                         keep_macs: float | None = None, rounds: int = 3, hardest: int = 6,
                         criterion: Criterion | str = MAGNITUDE, method: str = "dp",
                         hessians: dict[str, torch.Tensor] | None = None,
                         importances: dict[str, torch.Tensor] | None = None) -> Corrected:
    """The correction loop of the module docstring, under the budget :func:`allocate` takes;
    ``hessians`` for a criterion that re-fits (OBS): each measurement prunes with its weights;
    ``importances``: the layers' importances when the caller has them."""
    if rounds < 1 or hardest < 1:
        raise ValueError(f"rounds and hardest: at least 1, got {rounds} and {hardest}")
    criterion = PrunedWeights(criterion, hessians, importances)
    with batch_statistics(model.eval()):
        reference = model(inputs)
    factors = {c.name: 1.0 for c in curves.layers}
    history: list[dict] = []
    best: tuple[float, Allocation] | None = None
    for _ in range(rounds):
        allocation = allocate(_scaled(curves, factors), keep_weights=keep_weights, keep_macs=keep_macs, method=method)
        if any(allocation.sparsity == earlier["sparsity"] for earlier in history):
            break  # the factors moved nothing: later rounds would repeat this one
        measured = joint_distortion(model, inputs, allocation.sparsity, criterion, reference)
        single = _single(curves, allocation.sparsity)
        # reported like the plain DP's: its distortion summed on the uncorrected curves
        allocation = replace(allocation, distortion=sum(single.values()))
        history.append({"sparsity": allocation.sparsity, "predicted": allocation.distortion,
                        "measured": measured, "factors": dict(factors)})
        if best is None or measured < best[0]:
            best = (measured, allocation)
        factors = _factors(model, inputs, single, allocation.sparsity, measured, factors, hardest, criterion,
                           reference)
    return Corrected(best[1], best[0], history)


def _factors(model, inputs, single: dict[str, float], sparsity: dict[str, float], measured: float,
             factors: dict[str, float], hardest: int, criterion, reference) -> dict[str, float]:
    """g_l = m_l / C_l(s_l) for the ``hardest`` layers (the others keep theirs)."""
    factors = dict(factors)
    for name in sorted(single, key=lambda n: factors[n] * single[n], reverse=True)[:hardest]:
        if single[name] > 0:
            marginal = measured - joint_distortion(model, inputs, {**sparsity, name: 0.0}, criterion, reference)
            factors[name] = min(max(marginal / single[name], 1 / MAX_FACTOR), MAX_FACTOR)
    return factors
