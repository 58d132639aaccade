"""Hand-written models as users bring them (torchvision/timm-style; torchvision is no dependency
here): ResNets with torchvision's layer structure (v1.5, stride in the 3x3 conv) - CIFAR-style
(3x3 stem, no max-pool), ImageNet-style ResNet-18/34/50 (7x7 stem, max-pool) - and a small
residual CNN with BN. Factories need no arguments, so ``--model tests/models/cifar.py:resnet18``
works."""

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


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1):
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or c_in != out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        return torch.relu(self.bn3(self.conv3(out)) + identity)


class ImageNetResNet(nn.Module):
    """torchvision's ``resnet18`` / ``resnet50`` layer for layer (same parameter counts)."""

    def __init__(self, bottleneck: bool, depths: list[int], num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, c_in = [], 64
        for i, depth in enumerate(depths):
            width, blocks = 64 * 2 ** i, []
            for j in range(depth):
                stride = 2 if j == 0 and i > 0 else 1
                blocks.append(Bottleneck(c_in, width, stride) if bottleneck else BasicBlock(c_in, width, stride))
                c_in = width * (4 if bottleneck else 1)
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def tv_resnet18(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    return ImageNetResNet(False, [2, 2, 2, 2], num_classes, in_channels)


def tv_resnet34(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    return ImageNetResNet(False, [3, 4, 6, 3], num_classes, in_channels)


def tv_resnet50(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    return ImageNetResNet(True, [3, 4, 6, 3], num_classes, in_channels)


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


class VGG16(nn.Module):
    """torchvision's ``vgg16`` (configuration D, no BN) layer for layer."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        layers, c_in = [], in_channels
        for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
            if width == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU(inplace=True)]
                c_in = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 4096),
                                        nn.ReLU(inplace=True), nn.Linear(4096, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 7)
        return self.classifier(torch.flatten(x, 1))


def vgg16(num_classes: int = 1000, in_channels: int = 3) -> VGG16:
    return VGG16(num_classes, in_channels)
