"""``inverted`` (MobileNetV2/EfficientNet): 1x1 conv c_in->btn, BN, SiLU; depthwise k x k
conv (stride s), BN, SiLU; squeeze-excite on btn channels (global pool, 1x1 conv btn->btn//4
with bias, SiLU, 1x1 conv back with bias, sigmoid gate); 1x1 conv btn->out, BN (linear
bottleneck: no activation); plus the input when c_in == out and s == 1 (no projection
otherwise). Unit width c_in k^2 btn (the depthwise conv's fan-in is k^2)."""

from __future__ import annotations

from designer.families.base import BlockFamily, FamilyDefaults, Layer, conv, down, se_channels


class Inverted(BlockFamily):
    name = "inverted"
    blocks = "designer.families.inverted_blocks"
    tinynas_class = "SuperResK1DWSEK1"
    layers_per_block = 3
    btn_exponent = 1
    kernel_convs = 1
    defaults = FamilyDefaults(btn_ratio=(1.5, 6.0), kernels=(3, 5, 7), effectiveness=0.5, strides=(2, 1, 2, 2, 2, 2))
    activation = "silu"

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


FAMILY = Inverted()
