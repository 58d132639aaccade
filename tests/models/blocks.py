"""Blocks of torchvision/timm architectures written by hand (torchvision is no dependency here):
a MobileNetV2 inverted residual, a DenseNet dense block, a ShuffleNetV2 unit (``chunk``), a ViT
encoder block (``nn.MultiheadAttention``). Each factory takes no arguments, for ``--model``."""

from __future__ import annotations

import torch
from torch import nn


class InvertedResidual(nn.Module):
    def __init__(self, channels: int = 16, expand: int = 6):
        super().__init__()
        hidden = channels * expand
        self.block = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True), nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class DenseBlock(nn.Module):
    def __init__(self, channels: int = 16, growth: int = 8, layers: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(nn.Sequential(
            nn.BatchNorm2d(channels + i * growth), nn.ReLU(inplace=True),
            nn.Conv2d(channels + i * growth, 4 * growth, 1, bias=False), nn.BatchNorm2d(4 * growth),
            nn.ReLU(inplace=True), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class ShuffleUnit(nn.Module):
    def __init__(self, channels: int = 16):
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        out = torch.cat((a, self.branch(b)), 1)
        n, c, h, w = out.shape
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


class EncoderBlock(nn.Module):
    """A ViT encoder block on patch tokens: LN, multi-head attention, residual, LN, MLP, residual."""

    def __init__(self, width: int = 32, heads: int = 4, patch: int = 4, channels: int = 3):
        super().__init__()
        self.embed = nn.Conv2d(channels, width, patch, patch)
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        y = self.ln1(tokens)
        tokens = tokens + self.attention(y, y, y, need_weights=False)[0]
        return tokens + self.mlp(self.ln2(tokens))


def mobilenet_v2_block() -> nn.Module:
    return InvertedResidual()


def dense_block() -> nn.Module:
    return DenseBlock()


def shuffle_unit() -> nn.Module:
    return ShuffleUnit()


def vit_block() -> nn.Module:
    return EncoderBlock()
