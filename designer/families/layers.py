"""The torch building blocks the families' ``nn.Module`` sides and the network share, and the
channel copies of channel pruning. Only the ``*_blocks`` modules and the network import this."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU}


class ConvBNAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = nn.ReLU):
        super().__init__()
        self.add_module("conv", nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(c_out))
        if act is not None:
            self.add_module("act", act(inplace=True))


class Projection(nn.Module):
    """Average pool (when strided) then 1x1 conv and BN (ResNet-D's shortcut)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.pool = (nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                     if stride > 1 else nn.Identity())
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.pool(x)))


# ---- copying the strongest channels (channel pruning) -------------------------------------
def strongest(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the ``n`` largest scores, in their original order."""
    return torch.sort(torch.topk(scores, n).indices).values


def output_strength(conv_module: nn.Conv2d, in_idx: torch.Tensor | None = None) -> torch.Tensor:
    """L1 norm of each output filter (over the kept inputs ``in_idx`` only, when given)."""
    weight = conv_module.weight.detach()
    if in_idx is not None and conv_module.groups == 1:
        weight = weight[:, in_idx]
    return weight.abs().flatten(1).sum(1)


@torch.no_grad()
def take_conv(source: nn.Conv2d, target: nn.Conv2d, out_idx: torch.Tensor | None = None,
              in_idx: torch.Tensor | None = None) -> None:
    weight = source.weight.detach()
    if out_idx is not None:
        weight = weight[out_idx]
    if in_idx is not None and source.groups == 1:
        weight = weight[:, in_idx]
    target.weight.copy_(weight)
    if source.bias is not None:
        target.bias.copy_(source.bias.detach() if out_idx is None else source.bias.detach()[out_idx])


@torch.no_grad()
def take_bn(source: nn.BatchNorm2d, target: nn.BatchNorm2d, idx: torch.Tensor | None = None) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(source, name).detach()
        getattr(target, name).copy_(value if idx is None else value[idx])
    target.num_batches_tracked.copy_(source.num_batches_tracked)


def shrink_inner_pair(block: nn.Module, new: nn.Module, keep: int) -> None:
    """The shrink of blocks whose inner channels are made by ``conv1`` and read by ``conv2``
    (both :class:`ConvBNAct`): keep ``conv1``'s ``keep`` strongest filters, and ``conv2``'s
    inputs from them."""
    inner = strongest(output_strength(block.conv1.conv), keep)
    take_conv(block.conv1.conv, new.conv1.conv, out_idx=inner)
    take_bn(block.conv1.bn, new.conv1.bn, inner)
    take_conv(block.conv2.conv, new.conv2.conv, in_idx=inner)
    take_bn(block.conv2.bn, new.conv2.bn)
