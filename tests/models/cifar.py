"""Hand-written models as users bring them (torchvision/timm-style; torchvision is no dependency
here): a CIFAR-style ResNet-18 (3x3 stem, no max-pool) and a small residual CNN with BN.
Factories take no arguments, so ``--model tests/models/cifar.py:resnet18`` works."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, width: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = None
        if stride != 1 or c_in != width:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, width, 1, stride, bias=False), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + identity)


class CifarResNet(nn.Module):
    def __init__(self, depths=(2, 2, 2, 2), widths=(64, 128, 256, 512), num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, c_in = [], widths[0]
        for i, (depth, width) in enumerate(zip(depths, widths)):
            layers.append(nn.Sequential(*[BasicBlock(c_in if j == 0 else width, width, 2 if j == 0 and i > 0 else 1)
                                          for j in range(depth)]))
            c_in = width
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def resnet18(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-18 for 32x32 inputs: 11.2M parameters, 21 prunable layers (20 convs and the classifier
    besides the three 1x1 shortcuts)."""
    return CifarResNet(num_classes=num_classes, in_channels=in_channels)


def small_residual(num_classes: int = 10, in_channels: int = 1) -> CifarResNet:
    """A small residual CNN with BN for 8x8 grey inputs (the digits dataset)."""
    return CifarResNet(depths=(1, 1), widths=(8, 16), num_classes=num_classes, in_channels=in_channels)
