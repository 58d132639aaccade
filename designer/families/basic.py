"""``basic`` (ResNet-18/34): k x k conv c_in->btn (stride s), BN, ReLU; k x k conv btn->out,
BN; plus the shortcut; ReLU. A stage's first block has a projection shortcut (so its costs are
affine in c_in), the others the identity. Unit width (c_in k^2)(btn k^2): with btn = out this
is our extension of the authors' scorer, which cannot score basic blocks."""

from __future__ import annotations

import torch
from torch import nn

from designer.families.base import BlockFamily, ConvBNAct, FamilyDefaults, Layer, Projection, conv, down, \
    projection_layers, shrink_inner_pair


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool):
        super().__init__()
        self.conv1 = ConvBNAct(c_in, btn, k, stride)
        self.conv2 = ConvBNAct(btn, out, k, act=None)
        self.shortcut = Projection(c_in, out, stride) if first else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class Basic(BlockFamily):
    name = "basic"
    tinynas_class = "SuperResKXKX"
    layers_per_block = 2
    btn_exponent = 1
    kernel_convs = 2
    defaults = FamilyDefaults(btn_ratio=(0.25, 1.0), kernels=(3, 5), effectiveness=0.3, strides=(2, 2, 2, 2, 1, 2))

    def layers(self, prefix: str, c_in: int, out: int, btn: int, k: int, stride: int, in_res: int,
               first: bool) -> tuple[list[Layer], int]:
        res = down(in_res, stride)
        layers = [conv(f"{prefix}.conv1.conv", c_in, btn, k, stride, in_res),
                  conv(f"{prefix}.conv2.conv", btn, out, k, 1, res)]
        ops = 2 * btn * res * res + out * res * res  # BN + ReLU, BN
        if first:
            shortcut, shortcut_ops = projection_layers(prefix, c_in, out, stride, in_res)
            layers, ops = layers + shortcut, ops + shortcut_ops
        return layers, ops + 2 * out * res * res  # residual add, ReLU

    def module(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool) -> nn.Module:
        return BasicBlock(c_in, out, btn, k, stride, first)

    def zero_init(self, block: nn.Module) -> None:
        nn.init.zeros_(block.conv2.bn.weight)

    def shrink(self, block: nn.Module, new: nn.Module, keep: int) -> None:
        shrink_inner_pair(block, new, keep)
        new.shortcut.load_state_dict(block.shortcut.state_dict())


FAMILY = Basic()
