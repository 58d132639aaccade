"""Materialise a :class:`~designer.spec.NetworkSpec` into a ``torch.nn.Module``.

Block families (``c_in`` is the block input, ``s`` the stride, which only a stage's
first block carries; every conv is bias-free and followed by BatchNorm):

* ``basic`` (ResNet-18/34): k x k conv c_in->btn (stride s), BN, ReLU; k x k conv
  btn->out, BN; plus the shortcut; ReLU.
* ``bottleneck`` (ResNet-50): 1x1 conv c_in->btn, BN, ReLU; k x k conv btn->btn
  (stride s), BN, ReLU; 1x1 conv btn->out, BN; plus the shortcut; ReLU.
* ``inverted`` (MobileNetV2/EfficientNet): 1x1 conv c_in->btn, BN, SiLU; depthwise
  k x k conv (stride s), BN, SiLU; squeeze-excite on btn channels (global pool, 1x1 conv
  btn->btn//4 with bias, SiLU, 1x1 conv back with bias, sigmoid gate); 1x1 conv
  btn->out, BN (linear bottleneck: no activation); plus the input when c_in == out and
  s == 1 (no projection otherwise).

In ``basic`` and ``bottleneck`` stages the first block always has a projection shortcut
and the others the identity, so a block's costs are affine in its input width (which the
design MILP relies on). A projection shortcut is a 2x2 average pool with stride 2 (only when strided, ceil mode)
then a 1x1 conv c_in->out and BN, as in ResNet-D.

The network is: stem (k x k conv, BN, ReLU), the stages, an optional 1x1 head conv (BN,
ReLU, or SiLU for inverted nets), global average pooling and a linear classifier. Module
paths match the layer names of :func:`designer.costs.count`.
"""

from __future__ import annotations

import torch
from torch import nn

from designer.costs import se_channels
from designer.spec import NetworkSpec


class ConvBNAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = nn.ReLU):
        layers: dict[str, nn.Module] = {
            "conv": nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, groups=groups, bias=False),
            "bn": nn.BatchNorm2d(c_out),
        }
        if act is not None:
            layers["act"] = act(inplace=True)
        super().__init__()
        for name, module in layers.items():
            self.add_module(name, module)


class Projection(nn.Module):
    """Average pool (when strided) then 1x1 conv and BN."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.pool = (nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                     if stride > 1 else nn.Identity())
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.pool(x)))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool):
        super().__init__()
        self.conv1 = ConvBNAct(c_in, btn, k, stride)
        self.conv2 = ConvBNAct(btn, out, k, act=None)
        self.shortcut = Projection(c_in, out, stride) if first else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


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


BLOCKS: dict[str, type[nn.Module]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "inverted": InvertedResidual,
}


class Network(nn.Module):
    """A network built from a spec; ``self.spec`` keeps the spec it was built from."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        spec.validate()
        self.spec = spec
        self.stem = ConvBNAct(spec.in_channels, spec.stem.out, spec.stem.k, spec.stem.stride)
        stages, channels = [], spec.stem.out
        for stage in spec.stages:
            block = BLOCKS[stage.family]
            stages.append(nn.Sequential(*[
                block(channels if j == 0 else stage.out, stage.out, stage.btn, stage.k,
                      stage.stride if j == 0 else 1, first=j == 0)
                for j in range(stage.L)
            ]))
            channels = stage.out
        self.stages = nn.Sequential(*stages)
        if spec.head is not None:
            head_act = nn.SiLU if spec.stages[-1].family == "inverted" else nn.ReLU
            self.head = ConvBNAct(channels, spec.head, 1, act=head_act)
        else:
            self.head = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(spec.feature_channels, spec.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init for convs; the last BN of each residual branch starts at zero so every
        residual block starts as the identity (Goyal et al., 2017)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, (BasicBlock, Bottleneck)):
                last = module.conv2 if isinstance(module, BasicBlock) else module.conv3
                nn.init.zeros_(last.bn.weight)
            elif isinstance(module, InvertedResidual) and module.residual:
                nn.init.zeros_(module.conv3.bn.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.forward_features(x)), 1))


def build(spec: NetworkSpec) -> Network:
    """Materialise ``spec`` as a freshly initialised :class:`Network`."""
    return Network(spec)


def example_input(spec: NetworkSpec, batch_size: int = 2) -> torch.Tensor:
    return torch.randn(batch_size, spec.in_channels, spec.resolution, spec.resolution)
