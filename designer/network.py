"""Materialise a :class:`~designer.spec.NetworkSpec` into a ``torch.nn.Module``.

The network is: stem (k x k conv, BN, ReLU), the stages of blocks, an optional 1x1 head conv
(BN and the last stage family's activation), global average pooling and a linear classifier.
Every conv is bias-free and followed by BatchNorm. Each block family builds its own blocks
(:mod:`designer.families`, where each family's layer structure is documented); a stage's
first block takes the stage input and the stride. Module paths match the layer names of
:func:`designer.costs.count`.
"""

from __future__ import annotations

import torch
from torch import nn

from designer.families import family
from designer.families.layers import ACTIVATIONS, ConvBNAct
from designer.spec import NetworkSpec


class Network(nn.Module):
    """A network built from a spec; ``self.spec`` keeps the spec it was built from."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        spec.validate()
        self.spec = spec
        self.stem = ConvBNAct(spec.in_channels, spec.stem.out, spec.stem.k, spec.stem.stride)
        stages, channels = [], spec.stem.out
        for stage in spec.stages:
            blocks = family(stage.family)
            stages.append(nn.Sequential(*[
                blocks.module(channels if j == 0 else stage.out, stage.out, stage.btn, stage.k,
                              stage.stride if j == 0 else 1, first=j == 0)
                for j in range(stage.L)
            ]))
            channels = stage.out
        self.stages = nn.Sequential(*stages)
        if spec.head is not None:
            self.head = ConvBNAct(channels, spec.head, 1, act=ACTIVATIONS[family(spec.stages[-1].family).activation])
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
        for stage, blocks in zip(self.spec.stages, self.stages):
            for block in blocks:
                family(stage.family).zero_init(block)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.forward_features(x)), 1))


def build(spec: NetworkSpec) -> Network:
    """Materialise ``spec`` as a freshly initialised :class:`Network`."""
    return Network(spec)


def example_input(spec: NetworkSpec, batch_size: int = 2) -> torch.Tensor:
    return torch.randn(batch_size, spec.in_channels, spec.resolution, spec.resolution)
