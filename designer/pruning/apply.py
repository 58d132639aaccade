"""Apply per-layer sparsities with ``torch.nn.utils.prune`` so users' tools see standard
pruned modules (``weight_orig`` and ``weight_mask``), and make them permanent."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from designer.pruning.criteria import MAGNITUDE, Criterion, criterion_of, magnitude_mask
from designer.pruning.curves import PRUNABLE, prunable_layers


def apply_sparsity(model: nn.Module, sparsity: dict[str, float], criterion: Criterion | str = MAGNITUDE,
                   hessians: dict | None = None, errors: dict | None = None,
                   means: dict | None = None, importances: dict | None = None) -> dict[str, float]:
    """Mask each named layer by ``criterion`` (magnitude) to its sparsity (a removed weight stays removed:
    zeros from earlier rounds count as removed), the kept weights re-fitted where the criterion
    does (OBS, from ``hessians``: :func:`designer.pruning.hessian.layer_hessians`); returns the
    sparsities reached. ``errors``, with ``hessians``: filled with each layer's relative output
    error on the calibration data, ``{"masked": plain mask, "kept": the weights kept}``. ``means``
    (each layer's mean input, from ``layer_hessians(means=...)``): a layer with a bias gets its
    outputs' mean over the calibration data back (the statistics correction of OBC; a layer
    followed by BatchNorm has it from the re-estimation as well). ``importances``: each layer's
    importance under the criterion when the caller has them (else computed here)."""
    criterion = criterion_of(criterion)
    modules = dict(prunable_layers(model))
    unknown = sorted(set(sparsity) - set(modules))
    if unknown:
        raise ValueError(f"sparsity: no prunable layer named {', '.join(unknown)}")
    if criterion.needs_hessian and hessians is None:
        raise ValueError(f"criterion {criterion.name}: needs the layers' Hessians (hessians=layer_hessians(...))")
    reached = {}
    for name, target in sparsity.items():
        module = modules[name]
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            prune.remove(module, "weight")
        weight = module.weight.detach()
        h = hessians.get(name) if hessians is not None else None
        importance = importances.get(name) if importances is not None else None
        mask = magnitude_mask(weight, target, current=weight != 0, criterion=criterion, hessian=h,
                              importance=importance)
        new = criterion.pruned(weight, mask, h)
        if errors is not None and h is not None:
            from designer.pruning.obs import reconstruction_error
            errors[name] = reconstruction_error(weight, mask, new, h, criterion)
        set_weights(module, new, mask, means.get(name) if means is not None else None)
        reached[name] = 1 - mask.sum().item() / mask.numel()
    return reached


def set_weights(module: nn.Module, new: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor | None = None) -> None:
    """``module``'s weight becomes ``new`` under ``mask`` (``torch.nn.utils.prune``'s
    ``weight_orig`` and ``weight_mask``); with ``mean`` (the layer's mean input) a bias is moved so
    that the outputs' mean over the calibration data stays what it was."""
    with torch.no_grad():
        if mean is not None and getattr(module, "bias", None) is not None:
            from designer.pruning.obs import bias_shift
            module.bias.sub_(bias_shift(module.weight, new, mean).to(module.bias.device, module.bias.dtype))
        module.weight.copy_(new)
    prune.custom_from_mask(module, "weight", mask)


def make_permanent(model: nn.Module) -> None:
    """Fold every mask into its weight (``prune.remove``)."""
    for _, module in prunable_layers(model):
        if hasattr(module, "weight_mask"):
            prune.remove(module, "weight")


def layer_sparsity(model: nn.Module) -> dict[str, float]:
    return {name: float((module.weight == 0).sum()) / module.weight.numel() for name, module in prunable_layers(model)}


def total_sparsity(model: nn.Module) -> float:
    layers = prunable_layers(model)
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    return zeros / sum(m.weight.numel() for _, m in layers)


def model_sparsity(model: nn.Module) -> tuple[float, int]:
    """(fraction of zeros, count) over every parameter of the model, each tied tensor once: the
    figure to read beside :func:`total_sparsity`, which covers the prunable weights only."""
    unique = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() for p in unique)
    zeros = sum(int((p == 0).sum()) for p in unique)
    return (zeros / total if total else 0.0), total


def left_out(model: nn.Module) -> dict[str, str]:
    """The layers holding parameters that weight pruning leaves whole, each with the reason."""
    pruned = dict(prunable_layers(model))
    held = {id(getattr(m, "weight_orig", m.weight)): name for name, m in pruned.items()}
    reasons = {}
    for name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if not own or name in pruned:
            continue
        weight = own.get("weight")
        if weight is not None and id(weight) in held:
            reasons[name] = f"its weight is tied to {held[id(weight)]}'s, pruned there"
        elif isinstance(module, nn.MultiheadAttention):
            reasons[name] = "nn.MultiheadAttention reads its projections directly (a mask would never take effect)"
        elif isinstance(module, PRUNABLE):
            reasons[name] = "the output projection of nn.MultiheadAttention, which reads its weight directly"
        elif isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)):
            reasons[name] = "a normalisation layer (scales and shifts, not connections)"
        else:
            reasons[name or "(the model itself)"] = (f"parameters of a {type(module).__name__} ({', '.join(own)}): only "
                                                     f"convs and linears are pruned")
    return reasons
