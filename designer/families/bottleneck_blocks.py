"""The torch side of the ``bottleneck`` family (:mod:`designer.families.bottleneck` holds its costs):
its ``nn.Module`` and how it is zero-initialised and shrunk."""

from __future__ import annotations

import torch
from torch import nn

from designer.families.layers import ConvBNAct, Projection, output_strength, strongest, take_bn, take_conv


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool):
        super().__init__()
        self.conv1 = ConvBNAct(c_in, btn, 1)
        self.conv2 = ConvBNAct(btn, btn, k, stride)
        self.conv3 = ConvBNAct(btn, out, 1, act=None)
        self.shortcut = Projection(c_in, out, stride) if first else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


def module(c_in: int, out: int, btn: int, k: int, stride: int, first: bool) -> nn.Module:
    return Bottleneck(c_in, out, btn, k, stride, first)


def zero_init(block: nn.Module) -> None:
    nn.init.zeros_(block.conv3.bn.weight)


def shrink(block: nn.Module, new: nn.Module, keep: int) -> None:
    first = strongest(output_strength(block.conv1.conv), keep)
    take_conv(block.conv1.conv, new.conv1.conv, out_idx=first)
    take_bn(block.conv1.bn, new.conv1.bn, first)
    second = strongest(output_strength(block.conv2.conv, first), keep)
    take_conv(block.conv2.conv, new.conv2.conv, out_idx=second, in_idx=first)
    take_bn(block.conv2.bn, new.conv2.bn, second)
    take_conv(block.conv3.conv, new.conv3.conv, in_idx=second)
    take_bn(block.conv3.bn, new.conv3.bn)
    new.shortcut.load_state_dict(block.shortcut.state_dict())
