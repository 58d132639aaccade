"""Each prunable layer's Hessian of its output error, H = X X^T over the calibration inputs.

For a layer computing ``y = W x`` per position, the squared change of its output on the
calibration data when ``W`` becomes ``W'`` is, row by row (the rows of ``W`` are independent),

    E(w') = sum_n ((w' - w) . x_n)^2 = (w' - w) H (w' - w)^T,      H = sum_n x_n x_n^T      (1)

where ``x_n`` runs over every position of every calibration image: a Linear's input vectors
(every token of a sequence), a Conv2d's input patches (its ``unfold``, one column per output
position). A grouped conv's output row sees only its group's input channels, so H is one
matrix per group, of side ``in_channels / groups x kernel area``. Accumulated in float64 (the
sums of many products lose digits in float32), one calibration chunk at a time, from forward
hooks during one ordinary forward pass: what the pruning module (OBS) and, later, quantization
(GPTQ) read. Memory: groups x side^2 x 8 bytes per layer (ResNet-18's 3x3x512 convs: 170 MB).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def layer_inputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input vectors ``x_n`` of (1), as (groups, side, positions)."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1]).T.unsqueeze(0)
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str):  # "same": unfold takes numbers
            raise ValueError(f"{type(module).__name__} with padding={module.padding!r}: give numeric padding "
                             f"for OBS")
        columns = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=module.padding,
                           stride=module.stride)  # (batch, C k k, positions)
        groups = module.groups
        side = columns.shape[1] // groups
        columns = columns.reshape(x.shape[0], groups, side, -1).permute(1, 2, 0, 3)
        return columns.reshape(groups, side, -1)
    raise TypeError(f"no Hessian for a {type(module).__name__}")


def hessian_bytes(module: nn.Module) -> int:
    """What the layer's H takes in memory: groups x side^2 float64 values."""
    if isinstance(module, nn.Linear):
        return 8 * module.in_features ** 2
    side = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
    return 8 * module.groups * side ** 2


@torch.no_grad()
def layer_hessians(model: nn.Module, inputs: torch.Tensor, layers: list[tuple[str, nn.Module]],
                   chunk: int = 16, means: dict | None = None) -> dict[str, torch.Tensor]:
    """H of (1) for each named layer, (groups, side, side) in float64 on the CPU, from one forward
    pass of ``inputs`` through ``model`` as it is (its mode, its masks: with BatchNorm on batch
    statistics, the whole batch at once, as the curves run it); each layer's inputs are unfolded
    ``chunk`` images at a time (the unfolded patches of a large feature map are big). ``means``:
    filled with each layer's mean input vector, (groups, side), for the bias correction."""
    found: dict[str, torch.Tensor | None] = {name: None for name, _ in layers}
    sums: dict[str, list] = {name: [0.0, 0] for name, _ in layers}

    def hook(name: str):
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            for start in range(0, args[0].shape[0], chunk):
                x = layer_inputs(module, args[0][start:start + chunk].detach()).to("cpu", torch.float64)
                product = x @ x.transpose(1, 2)
                found[name] = product if found[name] is None else found[name] + product
                sums[name][0] = sums[name][0] + x.sum(dim=2)
                sums[name][1] += x.shape[2]
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in layers]
    try:
        model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name, value in found.items() if value is None]
    if missing:
        raise ValueError(f"obs: the forward pass never calls {', '.join(missing[:3])}, so it has no inputs to fit")
    if means is not None:
        means.update({name: total / count for name, (total, count) in sums.items()})
    return found
