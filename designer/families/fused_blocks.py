"""The torch side of the ``fused`` family (:mod:`designer.families.fused` holds its costs):
its ``nn.Module`` and how it is zero-initialised and shrunk."""

from __future__ import annotations

import torch
from torch import nn

from designer.families.layers import ConvBNAct, shrink_inner_pair


class FusedMBConv(nn.Module):
    def __init__(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool):
        super().__init__()
        self.conv1 = ConvBNAct(c_in, btn, k, stride, act=nn.SiLU)
        self.conv2 = ConvBNAct(btn, out, 1, act=None)
        self.residual = c_in == out and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.residual else y


def module(c_in: int, out: int, btn: int, k: int, stride: int, first: bool) -> nn.Module:
    return FusedMBConv(c_in, out, btn, k, stride, first)


def zero_init(block: nn.Module) -> None:
    if block.residual:
        nn.init.zeros_(block.conv2.bn.weight)


def shrink(block: nn.Module, new: nn.Module, keep: int) -> None:
    shrink_inner_pair(block, new, keep)
