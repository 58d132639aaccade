"""``inverted`` (MobileNetV2/EfficientNet): 1x1 conv c_in->btn, BN, SiLU; depthwise k x k
conv (stride s), BN, SiLU; squeeze-excite on btn channels (global pool, 1x1 conv btn->btn//4
with bias, SiLU, 1x1 conv back with bias, sigmoid gate); 1x1 conv btn->out, BN (linear
bottleneck: no activation); plus the input when c_in == out and s == 1 (no projection
otherwise). Unit width c_in k^2 btn (the depthwise conv's fan-in is k^2)."""

from __future__ import annotations

import torch
from torch import nn

from designer.families.base import BlockFamily, ConvBNAct, FamilyDefaults, Layer, conv, down, output_strength, \
    se_channels, strongest, take_bn, take_conv


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


class Inverted(BlockFamily):
    name = "inverted"
    tinynas_class = "SuperResK1DWSEK1"
    layers_per_block = 3
    btn_exponent = 1
    kernel_convs = 1
    defaults = FamilyDefaults(btn_ratio=(1.5, 6.0), kernels=(3, 5, 7), effectiveness=0.5, strides=(2, 1, 2, 2, 2, 2))
    activation = nn.SiLU

    def layers(self, prefix: str, c_in: int, out: int, btn: int, k: int, stride: int, in_res: int,
               first: bool) -> tuple[list[Layer], int]:
        res, se = down(in_res, stride), se_channels(btn)
        layers = [conv(f"{prefix}.conv1.conv", c_in, btn, 1, 1, in_res),
                  conv(f"{prefix}.conv2.conv", btn, btn, k, stride, in_res, groups=btn),
                  conv(f"{prefix}.se.reduce", btn, se, 1, 1, 1, bias=True, batchnorm=False),
                  conv(f"{prefix}.se.expand", se, btn, 1, 1, 1, bias=True, batchnorm=False),
                  conv(f"{prefix}.conv3.conv", btn, out, 1, 1, res)]
        # BN+SiLU twice, SE: pool, SiLU, sigmoid, gate multiply; BN after the projection
        ops = 2 * btn * in_res * in_res + 2 * btn * res * res
        ops += btn * res * res + se + btn + btn * res * res + out * res * res
        if c_in == out and stride == 1:
            ops += out * res * res  # residual add
        return layers, ops

    def module(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool) -> nn.Module:
        return InvertedResidual(c_in, out, btn, k, stride, first)

    def zero_init(self, block: nn.Module) -> None:
        if block.residual:
            nn.init.zeros_(block.conv3.bn.weight)

    def shrink(self, block: nn.Module, new: nn.Module, keep: int) -> None:
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


FAMILY = Inverted()
