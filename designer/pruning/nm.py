"""N:M semi-structured sparsity: in every group of M consecutive weights along a layer's input
channels, the N most important stay (2:4 is what NVIDIA's sparse tensor cores run, 50%).

The groups run along the input channels at each kernel position, as NVIDIA's ASP lays a conv's
weight out (out, kh, kw, in); a Linear's along its input features. A layer whose input channels
per group are not a multiple of M (a stem conv on 3 colour channels) stays dense and is named in
the report. Importance and the weights kept come from the criterion: magnitude keeps the
survivors as they were, OBS re-fits them to the layer's calibration outputs
(:mod:`designer.pruning.obs`), as SparseGPT does for its 2:4 results (what it buys here is the
pruning benchmark's question).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn

from designer.pruning.criteria import MAGNITUDE, Criterion, criterion_of, importance_of
from designer.pruning.curves import calibration_hessians, prunable_layers, recalibrate_batchnorm


def parse_nm(text: str, option: str = "--nm") -> tuple[int, int]:
    """``"2:4"`` as (2, 4): whole numbers with 0 < N < M."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(text))
    if not match or not 0 < int(match.group(1)) < int(match.group(2)):
        raise ValueError(f"{option}: N:M with 0 < N < M, e.g. 2:4, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """A conv weight as (out, kh, kw, in): its input channels consecutive (a linear's already are)."""
    return tensor.permute(0, 2, 3, 1) if tensor.dim() == 4 else tensor


def _channels_first(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.permute(0, 3, 1, 2) if tensor.dim() == 4 else tensor


def fits(weight: torch.Tensor, m: int) -> bool:
    """Whether the layer's input channels (per group) divide into groups of ``m``."""
    return weight.shape[1] % m == 0


def nm_mask(importance: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The N most important of every M consecutive input channels, shaped like ``importance``."""
    laid = _channels_last(importance)
    groups = laid.reshape(-1, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, torch.topk(groups, n, dim=1).indices, True)
    return _channels_first(keep.reshape(laid.shape)).contiguous()


def prune_nm(model: nn.Module, calibration: torch.Tensor, n: int, m: int, criterion: Criterion | str = MAGNITUDE,
             finetune: Callable[[nn.Module], None] | None = None, recalibrate_bn: bool = True) -> dict:
    """Every prunable layer that fits at N:M (module docstring), its kept weights as the criterion
    keeps them; BatchNorm re-estimated, fine-tuned, made permanent. The report: per layer its
    sparsity (N:M or dense), the layers left dense, and with OBS each layer's relative output
    error with the plain mask and with the weights kept."""
    from designer.pruning.apply import layer_sparsity, make_permanent, set_weights, total_sparsity
    from designer.pruning.obs import reconstruction_error
    criterion = criterion_of(criterion)
    layers = prunable_layers(model)
    fitting = [(name, module) for name, module in layers if fits(module.weight, m)]
    means: dict = {}
    hessians = calibration_hessians(model, calibration, fitting, recalibrate_bn, means) \
        if criterion.needs_hessian else {}
    errors = {}
    for name, module in fitting:
        weight, h = module.weight.detach().clone(), hessians.get(name)
        mask = nm_mask(importance_of(criterion, weight, h), n, m) & (weight != 0)
        new = criterion.pruned(weight, mask, h)
        if h is not None:
            errors[name] = reconstruction_error(weight, mask, new, h, criterion)
        set_weights(module, new, mask, means.get(name))
    recalibrate_batchnorm(model, calibration)
    if finetune is not None:
        finetune(model)
    make_permanent(model)
    return {"pattern": f"{n}:{m}", "criterion": criterion.name, "sparsity": total_sparsity(model),
            "layer_sparsity": layer_sparsity(model),
            "dense": [name for name, module in layers if not fits(module.weight, m)],
            "reconstruction_error": errors or None}
