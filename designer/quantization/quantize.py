"""Mixed-precision quantization as one call: fold, measure, allocate, quantize, calibrate.

    quantized = quantize_model(model, calibration, budget=AverageBits(4), rounding=GPTQ())
    quantized.model        # the user's module (changed in place): BatchNorm folded, fake-quantized
    quantized.report       # per-layer bits, predicted and measured distortion, size
    export_onnx(quantized.model, quantized.plan, example, "model.onnx")

Steps: BatchNorm folded into its convolutions (:mod:`~designer.quantization.fold`); every
layer's option table and the budget checked against its cheapest options (before any
measurement); each layer's distortion per option (:mod:`~designer.quantization.curves`); the
options chosen by the knapsack DP (:mod:`~designer.quantization.budgets`); the weights put on
their grids by the rounding rule (:mod:`~designer.quantization.rounding`); the activations'
ranges calibrated and the fake quantization installed (:mod:`~designer.quantization.fake`).
Without a budget every layer takes the one width given (uniform quantization).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from designer.pruning.curves import prunable_layers
from designer.pruning.hessian import layer_hessians
from designer.pruning.measure import distortion
from designer.quantization.budgets import Budget, allocate_bits, check_budget, layer_bytes, weight_bits
from designer.quantization.curves import LayerOptions, layer_table, option_curves, quantized_weight
from designer.quantization.fake import LayerQuant, calibrate_activations, quantize_weights
from designer.quantization.fold import fold_batchnorm
from designer.quantization.grid import WEIGHT_BITS, check_bits
from designer.quantization.rounding import GPTQ, Rounding, rounding_of
from designer.schemas import FORMAT_VERSION


@dataclass
class QuantizationReport:
    """What :func:`quantize_model` did: per layer its bits, sparsity and predicted distortion
    (its curve's value), the sum (``predicted``), the logits' distortion measured with the
    weights quantized (``measured_weights``) and with the activations too (``measured``), the
    weights' average bits and their stored bytes (:func:`~designer.quantization.budgets.layer_bytes`),
    the budget and the solver's result as it gave them."""

    rounding: str
    layers: list[dict]
    predicted: float
    measured_weights: float
    measured: float
    average_bits: float
    size_bytes: int
    folded: list[str]
    budget: dict | None = None
    solve: dict | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "rounding": self.rounding, "layers": self.layers,
                "predicted": self.predicted, "measured_weights": self.measured_weights, "measured": self.measured,
                "average_bits": self.average_bits, "size_bytes": self.size_bytes, "folded": self.folded,
                "budget": self.budget, "solve": self.solve, **self.extra}


@dataclass
class Quantized:
    model: nn.Module
    plan: dict[str, LayerQuant]
    report: QuantizationReport


def check_sparsities(sparsities) -> tuple[float, ...]:
    values = tuple(sorted({0.0, *(float(s) for s in sparsities)}))
    for s in values:
        if not 0.0 <= s < 1.0:
            raise ValueError(f"--with-sparsity: a sparsity is in [0, 1), got {s!r}")
    return values


def plan_table(model: nn.Module, example: torch.Tensor, budget: Budget | None, bits, sparsities) -> list[LayerOptions]:
    """The layers and their options, every input checked (before any measurement): bit-widths,
    sparsities, a budget the cheapest options reach, a layer to quantize."""
    bits, sparsities = check_bits(bits, "--bits"), check_sparsities(sparsities)
    if not prunable_layers(model):
        raise ValueError("quantize: the model has no Conv2d or Linear layer to quantize")
    if budget is None and (len(bits) > 1 or len(sparsities) > 1):
        raise ValueError("quantize: give a budget (--bits-avg, --size or --bops) to choose among the bit-widths, or "
                         "one bit-width (--bits 8) for uniform quantization")
    table = layer_table(model, example, bits, sparsities)
    if budget is not None:
        check_budget(budget, table)
    return table


def quantize_model(model: nn.Module, calibration: torch.Tensor, budget: Budget | None = None,
                   bits=WEIGHT_BITS, rounding: Rounding | str | None = None, sparsities=(0.0,),
                   progress: bool = False, curves: list[LayerOptions] | None = None) -> Quantized:
    """Quantize ``model`` in place (module doc): weights at ``bits`` (the options) chosen per layer
    under ``budget`` (:class:`~designer.quantization.budgets.AverageBits`, ``ModelSize`` or
    ``BOPs``; None with one width: uniform), rounded by ``rounding`` (default GPTQ on the
    calibration batch's H), optionally also pruned (``sparsities``: the options besides dense);
    activations at 8 bits calibrated on ``calibration``. ``curves``: each layer's distortion per
    option when the caller has them (another sensitivity, e.g. HAWQ-V3's Hessian trace, on the same
    table: :func:`plan_table` of the folded model); measured here otherwise."""
    rounding = rounding_of(rounding if rounding is not None else GPTQ())
    model.eval()
    folded = fold_batchnorm(model)
    table = plan_table(model, calibration[:1], budget, bits, sparsities)
    with torch.no_grad():
        reference = model(calibration)
    layers = dict(prunable_layers(model))
    hessians = layer_hessians(model, calibration, list(layers.items())) if rounding.needs_hessian else {}
    rounded: dict = {}  # (layer, option) -> its quantized weight, scales and mask, as the curves made them
    if curves is None:
        curves = option_curves(model, calibration, table, rounding, hessians, progress=progress, store=rounded).layers
    elif [(c.name, c.bits, c.sparsity) for c in curves] != [(t.name, t.bits, t.sparsity) for t in table]:
        raise ValueError("curves: give one per quantizable layer, with the options of plan_table (bits x sparsity)")
    allocation = allocate_bits(curves, budget) if budget is not None else None
    plan, weights, masks, rows = {}, {}, {}, []
    for layer in curves:
        i = allocation.choice[layer.name] if allocation is not None else 0
        b, s = layer.bits[i], layer.sparsity[i]
        chosen = rounded.get((layer.name, i)) or quantized_weight(layers[layer.name].weight, b, s, rounding,
                                                                   hessians.get(layer.name))
        weights[layer.name], scales, masks[layer.name] = chosen
        plan[layer.name] = LayerQuant(b, s, scales)
        rows.append({"name": layer.name, "bits": b, "sparsity": s, "weights": layer.weights,
                     "predicted": layer.distortion[i]})
    quantize_weights(model, plan, weights, masks)
    with torch.no_grad():
        measured_weights = distortion(model(calibration), reference)
    calibrate_activations(model, plan, calibration)
    with torch.no_grad():
        measured = distortion(model(calibration), reference)
    total = sum(layer.weights for layer in curves)
    average = sum(weight_bits(layer, row["bits"], row["sparsity"]) for layer, row in zip(curves, rows)) / total
    size = sum(layer_bytes(layer.weights, layer.channels, row["bits"]) for layer, row in zip(curves, rows))
    report = QuantizationReport(
        rounding.name, rows, float(sum(row["predicted"] for row in rows)), measured_weights, measured, average, size,
        folded, None if budget is None else {"option": budget.option, "unit": budget.unit,
                                             "limit": allocation.limit, "cost": allocation.cost},
        None if allocation is None else allocation.solve.to_dict())
    return Quantized(model, plan, report)

