"""``basic`` (ResNet-18/34): k x k conv c_in->btn (stride s), BN, ReLU; k x k conv btn->out,
BN; plus the shortcut; ReLU. A stage's first block has a projection shortcut (so its costs are
affine in c_in), the others the identity. Unit width (c_in k^2)(btn k^2): with btn = out this
is our extension of the authors' scorer, which cannot score basic blocks."""

from __future__ import annotations

from designer.families.base import BlockFamily, FamilyDefaults, Layer, conv, down, projection_layers


class Basic(BlockFamily):
    name = "basic"
    blocks = "designer.families.basic_blocks"
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


FAMILY = Basic()
