"""``bottleneck`` (ResNet-50): 1x1 conv c_in->btn, BN, ReLU; k x k conv btn->btn (stride s),
BN, ReLU; 1x1 conv btn->out, BN; plus the shortcut; ReLU. A stage's first block has a
projection shortcut, the others the identity. Unit width c_in (btn k^2) btn. The authors' depth
penalty leaves out the first two stages of bottleneck networks."""

from __future__ import annotations

import torch
from torch import nn

from designer.families.base import BlockFamily, ConvBNAct, FamilyDefaults, Layer, Projection, conv, down, \
    output_strength, projection_layers, strongest, take_bn, take_conv


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


class BottleneckFamily(BlockFamily):
    name = "bottleneck"
    tinynas_class = "SuperResK1KXK1"
    layers_per_block = 3
    btn_exponent = 2
    kernel_convs = 1
    depth_penalty_skips = 2
    defaults = FamilyDefaults(btn_ratio=(0.1, 1.0), kernels=(3, 5), effectiveness=0.3, strides=(2, 2, 2, 2, 1, 2))

    def layers(self, prefix: str, c_in: int, out: int, btn: int, k: int, stride: int, in_res: int,
               first: bool) -> tuple[list[Layer], int]:
        res = down(in_res, stride)
        layers = [conv(f"{prefix}.conv1.conv", c_in, btn, 1, 1, in_res),
                  conv(f"{prefix}.conv2.conv", btn, btn, k, stride, in_res),
                  conv(f"{prefix}.conv3.conv", btn, out, 1, 1, res)]
        ops = 2 * btn * in_res * in_res + 2 * btn * res * res + out * res * res
        if first:
            shortcut, shortcut_ops = projection_layers(prefix, c_in, out, stride, in_res)
            layers, ops = layers + shortcut, ops + shortcut_ops
        return layers, ops + 2 * out * res * res  # residual add, ReLU

    def module(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool) -> nn.Module:
        return Bottleneck(c_in, out, btn, k, stride, first)

    def zero_init(self, block: nn.Module) -> None:
        nn.init.zeros_(block.conv3.bn.weight)

    def shrink(self, block: nn.Module, new: nn.Module, keep: int) -> None:
        first = strongest(output_strength(block.conv1.conv), keep)
        take_conv(block.conv1.conv, new.conv1.conv, out_idx=first)
        take_bn(block.conv1.bn, new.conv1.bn, first)
        second = strongest(output_strength(block.conv2.conv, first), keep)
        take_conv(block.conv2.conv, new.conv2.conv, out_idx=second, in_idx=first)
        take_bn(block.conv2.bn, new.conv2.bn, second)
        take_conv(block.conv3.conv, new.conv3.conv, in_idx=second)
        take_bn(block.conv3.bn, new.conv3.bn)
        new.shortcut.load_state_dict(block.shortcut.state_dict())


FAMILY = BottleneckFamily()
