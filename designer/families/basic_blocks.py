"""The torch side of the ``basic`` family (:mod:`designer.families.basic` holds its costs):
its ``nn.Module`` and how it is zero-initialised and shrunk."""

from __future__ import annotations

import torch
from torch import nn

from designer.families.layers import ConvBNAct, Projection, shrink_inner_pair


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool):
        super().__init__()
        self.conv1 = ConvBNAct(c_in, btn, k, stride)
        self.conv2 = ConvBNAct(btn, out, k, act=None)
        self.shortcut = Projection(c_in, out, stride) if first else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


def module(c_in: int, out: int, btn: int, k: int, stride: int, first: bool) -> nn.Module:
    return BasicBlock(c_in, out, btn, k, stride, first)


def zero_init(block: nn.Module) -> None:
    nn.init.zeros_(block.conv2.bn.weight)


def shrink(block: nn.Module, new: nn.Module, keep: int) -> None:
    shrink_inner_pair(block, new, keep)
    new.shortcut.load_state_dict(block.shortcut.state_dict())
