"""``bottleneck`` (ResNet-50): 1x1 conv c_in->btn, BN, ReLU; k x k conv btn->btn (stride s),
BN, ReLU; 1x1 conv btn->out, BN; plus the shortcut; ReLU. A stage's first block has a
projection shortcut, the others the identity. Unit width c_in (btn k^2) btn. The authors' depth
penalty leaves out the first two stages of bottleneck networks."""

from __future__ import annotations

from designer.families.base import BlockFamily, FamilyDefaults, Layer, conv, down, projection_layers


class BottleneckFamily(BlockFamily):
    name = "bottleneck"
    blocks = "designer.families.bottleneck_blocks"
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


FAMILY = BottleneckFamily()
