"""Models written by hand for the contracts tests (issue 33): the shapes of torchvision models
that broke channel pruning or weight counting, each in a few lines."""

from __future__ import annotations

import torch
from torch import nn


class GroupedConv(nn.Module):
    """A grouped convolution (groups=4, as ResNeXt's), which Torch-Pruning cannot cut safely."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.grouped = nn.Conv2d(16, 16, 3, padding=1, groups=4)
        self.head = nn.Linear(16, 6)

    def forward(self, x):
        return self.head(torch.relu(self.grouped(torch.relu(self.stem(x)))).mean((2, 3)))


class StoredWidth(nn.Module):
    """Reshapes with a width stored at construction, as torchvision's VisionTransformer does with
    ``hidden_dim``: a copy with fewer channels cannot run."""

    def __init__(self):
        super().__init__()
        self.hidden_dim = 16
        self.conv_proj = nn.Conv2d(3, 16, 4, 4)
        self.mlp = nn.Linear(16, 16)
        self.head = nn.Linear(16, 6)

    def forward(self, x):
        tokens = self.conv_proj(x).reshape(x.shape[0], self.hidden_dim, -1).permute(0, 2, 1)
        return self.head(torch.relu(self.mlp(tokens)).mean(1))


class Tied(nn.Module):
    """Two linears holding one weight (a tied decoder, as language models tie embeddings)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.encode = nn.Linear(8, 8)
        self.decode = nn.Linear(8, 8)
        self.decode.weight = self.encode.weight
        self.head = nn.Linear(8, 6)

    def forward(self, x):
        h = torch.relu(self.stem(x)).mean((2, 3))
        return self.head(torch.relu(self.decode(torch.relu(self.encode(h)))))


def grouped_conv() -> nn.Module:
    return GroupedConv()


def stored_width() -> nn.Module:
    return StoredWidth()


def tied() -> nn.Module:
    torch.manual_seed(0)
    return Tied()


def small_vit() -> nn.Module:
    """torchvision's VisionTransformer, written by hand (tests/models/torchvision_like.py), at 32 px
    with one encoder block and the shapes dataset's six classes."""
    from tests.models.torchvision_like import VisionTransformer
    torch.manual_seed(0)
    return VisionTransformer(image=32, patch=8, layers=1, width=16, heads=2, mlp=32, num_classes=6)
