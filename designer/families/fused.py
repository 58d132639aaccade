"""``fused`` (fused-MBConv, EfficientNetV2): k x k conv c_in->btn (stride s), BN, SiLU;
1x1 conv btn->out, BN (no activation); plus the input when c_in == out and s == 1 (no
projection otherwise). ``btn`` is the expanded width. The expansion and the spatial conv are
one dense k x k conv, which GPUs run faster per MAC than a 1x1 expansion and a depthwise conv.
Unit width (c_in k^2) btn."""

from __future__ import annotations

import torch
from torch import nn

from designer.families.base import BlockFamily, ConvBNAct, FamilyDefaults, Layer, conv, down, \
    shrink_inner_pair


class FusedMBConv(nn.Module):
    def __init__(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool):
        super().__init__()
        self.conv1 = ConvBNAct(c_in, btn, k, stride, act=nn.SiLU)
        self.conv2 = ConvBNAct(btn, out, 1, act=None)
        self.residual = c_in == out and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.residual else y


class Fused(BlockFamily):
    name = "fused"
    tinynas_class = None  # TinyNAS has no fused-MBConv block
    layers_per_block = 2
    btn_exponent = 1
    kernel_convs = 1
    defaults = FamilyDefaults(btn_ratio=(1.0, 4.0), kernels=(3, 5), effectiveness=0.5, strides=(2, 1, 2, 2, 2, 2))
    activation = nn.SiLU

    def layers(self, prefix: str, c_in: int, out: int, btn: int, k: int, stride: int, in_res: int,
               first: bool) -> tuple[list[Layer], int]:
        res = down(in_res, stride)
        layers = [conv(f"{prefix}.conv1.conv", c_in, btn, k, stride, in_res),
                  conv(f"{prefix}.conv2.conv", btn, out, 1, 1, res)]
        ops = 2 * btn * res * res + out * res * res  # BN + SiLU, BN
        if c_in == out and stride == 1:
            ops += out * res * res  # residual add
        return layers, ops

    def module(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool) -> nn.Module:
        return FusedMBConv(c_in, out, btn, k, stride, first)

    def zero_init(self, block: nn.Module) -> None:
        if block.residual:
            nn.init.zeros_(block.conv2.bn.weight)

    def shrink(self, block: nn.Module, new: nn.Module, keep: int) -> None:
        shrink_inner_pair(block, new, keep)


FAMILY = Fused()
