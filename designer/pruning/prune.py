"""Prune a network to a target, one-shot or iteratively (the authors' schedule: each round
removes ``round_fraction`` of what is left, then fine-tunes), with any allocation method.

Every round: allocate (RD: re-measure the distortion curves on the current network, then the
knapsack DP; baselines: their own rule), mask with ``torch.nn.utils.prune``, re-estimate
BatchNorm statistics on the calibration batch, fine-tune with the masks in place, make the
masks permanent. A removed weight is never restored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from designer.user_model import calibration_tensor
from designer.pruning.allocate import BASELINES, METHODS, allocate, within_budget
from designer.pruning.apply import apply_sparsity, layer_sparsity, make_permanent, total_sparsity
from designer.pruning.correction import corrected_allocation
from designer.pruning.criteria import MAGNITUDE, Criterion, criterion_of, importance_of
from designer.pruning.curves import (Curves, calibration_hessians, default_grid, distortion_curves, layer_macs,
                                     prunable_layers, recalibrate_batchnorm)


@dataclass
class PruneReport:
    method: str
    rounds: list[dict] = field(default_factory=list)
    sparsity: dict[str, float] = field(default_factory=dict)  # final per-layer sparsity
    first_curves: Curves | None = None  # RD: the curves of the unpruned network (first round)
    first_allocation: dict[str, float] | None = None  # RD: the per-layer sparsity chosen on them

    def to_dict(self) -> dict:
        return {"method": self.method, "rounds": self.rounds, "sparsity": self.sparsity}


def round_targets(final: float, fraction: float, schedule: str, start: float = 1.0) -> list[float]:
    """Kept fractions round by round: start (1 - fraction)^r until ``final`` (``one-shot``: [final])."""
    if not 0 < final <= 1:
        raise ValueError(f"target: the kept fraction must be in (0, 1], got {final}")
    if schedule == "one-shot":
        return [final]
    if schedule != "iterative":
        raise ValueError(f"schedule: must be one-shot or iterative, got {schedule!r}")
    if not 0 < fraction < 1:
        raise ValueError(f"round_fraction: must be in (0, 1), got {fraction}")
    targets, kept = [], start
    while kept * (1 - fraction) > final + 1e-12:
        kept *= 1 - fraction
        targets.append(kept)
    return targets + [final]


@contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    begun = time.perf_counter()
    try:
        yield
    finally:
        seconds[step] = seconds.get(step, 0.0) + time.perf_counter() - begun


def _rd_allocation(model: nn.Module, calibration: torch.Tensor, curves: Curves, method: str, criterion: Criterion,
                   correction_rounds: int, sparsity: float | None, budget: int, hessians: dict | None = None,
                   importances: dict | None = None):
    """RD's per-layer targets on ``curves`` under ``budget``: (targets, predicted, measured)."""
    solver = "slope" if method == "rd-slope" else "dp"
    budgets = {"keep_weights" if sparsity is not None else "keep_macs": budget}
    if correction_rounds:
        corrected = corrected_allocation(model, calibration, curves, rounds=correction_rounds,
                                         criterion=criterion, method=solver, hessians=hessians,
                                         importances=importances, **budgets)
        return corrected.allocation.sparsity, corrected.allocation.distortion, corrected.measured
    allocation = allocate(curves, method=solver, **budgets)
    return allocation.sparsity, allocation.distortion, None


def prune_model(model: nn.Module, calibration: torch.Tensor | Iterable, method: str = "rd", sparsity: float | None = None,
                keep_macs: float | None = None, schedule: str = "iterative", round_fraction: float = 0.2,
                finetune: Callable[[nn.Module], None] | None = None, grid: list[float] | None = None,
                worst_case: bool = False, progress: bool = False,
                criterion: Criterion | str = MAGNITUDE, curve_points: int | None = None,
                correction_rounds: int = 0, recalibrate_bn: bool = True, scheduler: str | None = "serial") -> PruneReport:
    """Prune ``model`` in place to ``sparsity`` of its prunable weights removed, or (RD only)
    to ``keep_macs``, a fraction of its prunable layers' MACs kept. ``curve_points``: the RD
    curves measure this many grid points per layer and interpolate the rest (None: all).
    ``correction_rounds``: RD's allocation goes through that many rounds of the correction loop
    (:mod:`designer.pruning.correction`: the joint distortion measured, the curves of the layers
    it contradicts rescaled, the best measured allocation kept); 0: the plain DP.
    ``recalibrate_bn``: the curves measure each distortion with BatchNorm statistics
    re-estimated on the calibration batch (the default), or with the running statistics (as the
    RD_PRUNE authors do); the pruned model's BN is re-estimated either way. ``scheduler``: where
    the curves' layers are measured (:func:`designer.pruning.curves.distortion_curves`)."""
    if method not in METHODS:
        raise ValueError(f"method: must be one of {', '.join(METHODS)}, got {method!r}")
    if (sparsity is None) == (keep_macs is None):
        raise ValueError("give exactly one of sparsity and keep_macs")
    if keep_macs is not None and not method.startswith("rd"):
        raise ValueError(f"keep_macs: only the rd methods allocate under a MACs budget; {method} takes sparsity")
    if sparsity is not None and not 0 <= sparsity < 1:
        raise ValueError(f"sparsity: must be in [0, 1), got {sparsity}")
    if keep_macs is not None and not 0 < keep_macs <= 1:
        raise ValueError(f"keep_macs: the kept fraction of MACs must be in (0, 1], got {keep_macs}")
    criterion = criterion_of(criterion)
    final_kept = 1 - sparsity if sparsity is not None else keep_macs
    # a tensor or a DataLoader; curves and BN statistics where the model is
    calibration = calibration_tensor(calibration).to(next(model.parameters()).device)
    layers = prunable_layers(model)
    total_weights = sum(m.weight.numel() for _, m in layers)
    macs = layer_macs(model, calibration)
    total_macs = sum(macs.values())
    report = PruneReport(method)
    # an already pruned model continues from where it is
    if sparsity is not None:
        start = 1 - total_sparsity(model)
    else:
        start = sum(macs[n] * float((m.weight != 0).sum()) / m.weight.numel() for n, m in layers) / total_macs
    targets_kept = round_targets(final_kept, round_fraction, schedule, start=start)
    # one bar over the rounds (k of n, with an estimate of what is left), the curves' bar under it
    rounds = tqdm(targets_kept, desc=f"pruning ({len(targets_kept)} rounds)", unit="round", disable=not progress)
    for index, kept in enumerate(rounds, 1):
        # budgets are whole weights (or MACs) kept, counted on the masks: never over, for every method
        budget = int(math.floor(kept * (total_weights if sparsity is not None else total_macs) + 1e-6))
        seconds: dict[str, float] = {}
        errors, means, hessians = ({}, {}, None) if criterion.needs_hessian else (None, None, None)
        with _timed(seconds, "allocation"):  # the curves' measurement included (rd)
            if criterion.needs_hessian:  # once a round: the curves and the masks read the same H
                hessians = calibration_hessians(model, calibration, layers, recalibrate_bn, means)
            # and the same importances (ExactOBS's path is seconds a layer)
            importances = {name: importance_of(criterion, m.weight.detach(), (hessians or {}).get(name))
                           for name, m in layers}
            if method.startswith("rd"):
                curves = distortion_curves(model, calibration, grid or default_grid(), worst_case=worst_case,
                                           recalibrate_bn=recalibrate_bn, progress=progress, macs=macs,
                                           criterion=criterion, points=curve_points, hessians=hessians,
                                           scheduler=scheduler, importances=importances,
                                           desc=f"round {index}/{len(targets_kept)}: distortion curves")
                report.first_curves = report.first_curves or curves
                targets, predicted, measured = _rd_allocation(model, calibration, curves, method, criterion,
                                                              correction_rounds, sparsity, budget, hessians,
                                                              importances)
                report.first_allocation = report.first_allocation or dict(targets)
            else:
                targets = within_budget(model, BASELINES[method](model, 1 - kept), budget)
                predicted = measured = None
        with _timed(seconds, "masks"):
            reached = apply_sparsity(model, targets, criterion, hessians, errors, means, importances)
            recalibrate_batchnorm(model, calibration)
        with _timed(seconds, "fine-tuning"):
            if finetune is not None:
                finetune(model)
        make_permanent(model)
        kept_weights = sum(int((m.weight != 0).sum()) for _, m in layers)
        kept_macs = sum(macs[n] * (1 - reached[n]) for n in reached) / total_macs
        report.rounds.append({"target_kept": kept, "budget": budget,
                              "budget_unit": "weights" if sparsity is not None else "MACs",
                              "kept_weights": kept_weights, "sparsity": total_sparsity(model),
                              "kept_macs": kept_macs, "predicted_distortion": predicted,
                              "measured_distortion": measured, "criterion": criterion.name,
                              "reconstruction_error": errors, "seconds": seconds})
    report.sparsity = layer_sparsity(model)
    return report
