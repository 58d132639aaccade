"""``fused`` (fused-MBConv, EfficientNetV2): k x k conv c_in->btn (stride s), BN, SiLU;
1x1 conv btn->out, BN (no activation); plus the input when c_in == out and s == 1 (no
projection otherwise). ``btn`` is the expanded width. The expansion and the spatial conv are
one dense k x k conv, which GPUs run faster per MAC than a 1x1 expansion and a depthwise conv.
Unit width (c_in k^2) btn."""

from __future__ import annotations

from designer.families.base import BlockFamily, FamilyDefaults, Layer, conv, down


class Fused(BlockFamily):
    name = "fused"
    blocks = "designer.families.fused_blocks"
    tinynas_class = None  # TinyNAS has no fused-MBConv block
    layers_per_block = 2
    btn_exponent = 1
    kernel_convs = 1
    defaults = FamilyDefaults(btn_ratio=(1.0, 4.0), kernels=(3, 5), effectiveness=0.5, strides=(2, 1, 2, 2, 2, 2))
    activation = "silu"

    def layers(self, prefix: str, c_in: int, out: int, btn: int, k: int, stride: int, in_res: int,
               first: bool) -> tuple[list[Layer], int]:
        res = down(in_res, stride)
        layers = [conv(f"{prefix}.conv1.conv", c_in, btn, k, stride, in_res),
                  conv(f"{prefix}.conv2.conv", btn, out, 1, 1, res)]
        ops = 2 * btn * res * res + out * res * res  # BN + SiLU, BN
        if c_in == out and stride == 1:
            ops += out * res * res  # residual add
        return layers, ops


FAMILY = Fused()
