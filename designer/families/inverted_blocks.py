"""The torch side of the ``inverted`` family (:mod:`designer.families.inverted` holds its costs):
its ``nn.Module`` and how it is zero-initialised and shrunk."""

from __future__ import annotations

import torch
from torch import nn

from designer.families.base import se_channels
from designer.families.layers import ConvBNAct, output_strength, strongest, take_bn, take_conv


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        reduced = se_channels(channels)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(scale))))


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool):
        super().__init__()
        self.conv1 = ConvBNAct(c_in, btn, 1, act=nn.SiLU)
        self.conv2 = ConvBNAct(btn, btn, k, stride, groups=btn, act=nn.SiLU)
        self.se = SqueezeExcite(btn)
        self.conv3 = ConvBNAct(btn, out, 1, act=None)
        self.residual = c_in == out and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.se(self.conv2(self.conv1(x))))
        return x + y if self.residual else y


def module(c_in: int, out: int, btn: int, k: int, stride: int, first: bool) -> nn.Module:
    return InvertedResidual(c_in, out, btn, k, stride, first)


def zero_init(block: nn.Module) -> None:
    if block.residual:
        nn.init.zeros_(block.conv3.bn.weight)


def shrink(block: nn.Module, new: nn.Module, keep: int) -> None:
    # the same channels through the depthwise conv and squeeze-excite, whose hidden width
    # becomes a quarter of the new width (its units ranked by their reduce filters)
    inner = strongest(output_strength(block.conv1.conv), keep)
    take_conv(block.conv1.conv, new.conv1.conv, out_idx=inner)
    take_bn(block.conv1.bn, new.conv1.bn, inner)
    take_conv(block.conv2.conv, new.conv2.conv, out_idx=inner)
    take_bn(block.conv2.bn, new.conv2.bn, inner)
    hidden = strongest(output_strength(block.se.reduce, inner), se_channels(keep))
    take_conv(block.se.reduce, new.se.reduce, out_idx=hidden, in_idx=inner)
    take_conv(block.se.expand, new.se.expand, out_idx=inner, in_idx=hidden)
    take_conv(block.conv3.conv, new.conv3.conv, in_idx=inner)
    take_bn(block.conv3.bn, new.conv3.bn)
