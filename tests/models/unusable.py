"""Models mpdesign cannot map or prune as they are, written by hand for the bad-input tests:
each must get one clear error line naming what it needs, before any capture or calibration."""

from __future__ import annotations

import torch
from torch import nn


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, x, y):
        return self.linear(x.flatten(1)[:, :8]) + y


class Embedding(nn.Module):
    """Takes token ids (integers), not images."""

    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Embedding(10, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.embed(x).mean(1))


class DictOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return {"out": self.conv(x).mean((2, 3))}


class DataDependent(nn.Module):
    """Control flow on a tensor's value: neither torch.export nor torch.fx can capture it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return y * 2 if y.sum() > 0 else y


class NoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.ones(1))

    def forward(self, x):
        return (x * self.scale).flatten(1)[:, :6]


class Attention(nn.Module):
    """nn.MultiheadAttention reads its output projection's weight directly (never calls it)."""

    def __init__(self):
        super().__init__()
        self.proj, self.attn, self.head = nn.Linear(3, 8), nn.MultiheadAttention(8, 2, batch_first=True), nn.Linear(8, 6)

    def forward(self, x):
        tokens = self.proj(x[:, :, ::4, ::4].flatten(2).transpose(1, 2))
        return self.head(self.attn(tokens, tokens, tokens)[0].mean(1))


def two_inputs() -> nn.Module:
    return TwoInputs()


def embedding() -> nn.Module:
    return Embedding()


def dict_output() -> nn.Module:
    return DictOutput()


def data_dependent() -> nn.Module:
    return DataDependent()


def no_layers() -> nn.Module:
    return NoLayers()


def attention() -> nn.Module:
    return Attention()
