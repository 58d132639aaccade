"""Procedural image datasets, generated here from a seed (nothing is downloaded).

* :func:`make_shapes`: one flat shape per image on a noisy background (6 classes): easy; the
  CIFAR ResNet-18 reaches 100% on it, so it cannot separate pruning methods at 80-90%.
* :func:`make_textures`: 32x32 colour, 10 classes of *textured* shapes, rotated (+-25 deg) and
  scaled, on a textured background with clutter (smaller shapes of any class) and noise: the
  class is the large shape. Built so that the hand-written CIFAR ResNet-18 trained 10 epochs on
  a 2-core CPU lands between 75% and 90% test accuracy (measured figure in the benchmarks
  README), where methods that lose accuracy show it. The content is fixed by ``seed`` (the
  built-in ``textures`` dataset is always generated from seed 0; the split seed only reorders).

Drawing is numpy on the pixel grid, one image at a time (6,000 images: about 2 s): a shape is
a predicate on rotated, scaled coordinates (u, v) centred on the shape, a texture a function of
the pixel coordinates blended between two colours.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("disc", "square", "triangle", "cross", "ring", "bar")
TEXTURED = ("disc", "square", "triangle", "cross", "ring", "bar", "frame", "crescent", "tee", "ell")
TEXTURES = ("solid", "stripes", "checker", "dots")


def _inside(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The shape ``name`` as a boolean mask over coordinates in units of its size."""
    r = np.sqrt(u ** 2 + v ** 2)
    if name == "disc":
        return r <= 1
    if name == "square":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if name == "triangle":
        return (v <= 0.8) & (v >= -0.8) & (np.abs(u) <= (v + 0.8) / 1.6 * 0.9)
    if name == "cross":
        return ((np.abs(u) <= 0.25) | (np.abs(v) <= 0.25)) & (np.abs(u) <= 1) & (np.abs(v) <= 1)
    if name == "ring":
        return (r <= 1) & (r >= 0.6)
    if name == "bar":
        return (np.abs(u) <= 1) & (np.abs(v) <= 0.3)
    if name == "frame":
        return (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85) & ~((np.abs(u) <= 0.45) & (np.abs(v) <= 0.45))
    if name == "crescent":
        return (r <= 1) & ((u - 0.5) ** 2 + v ** 2 > 0.75 ** 2)
    if name == "tee":
        return ((np.abs(v + 0.65) <= 0.25) & (np.abs(u) <= 0.9)) | ((np.abs(u) <= 0.25) & (v >= -0.65) & (v <= 0.9))
    if name == "ell":
        return (((np.abs(u + 0.6) <= 0.25) & (np.abs(v) <= 0.9))
                | ((np.abs(v - 0.65) <= 0.25) & (u >= -0.85) & (u <= 0.8)))
    raise ValueError(f"unknown shape {name!r}")


def make_shapes(n: int = 3000, classes: int = 6, resolution: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Procedural shapes: disc, square, triangle, cross, ring, horizontal bar (in that order)."""
    if not 2 <= classes <= len(SHAPES):
        raise ValueError(f"shapes: classes must be between 2 and {len(SHAPES)}, got {classes}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution].astype(np.float32)
    images = rng.normal(0.0, 0.08, size=(n, 3, resolution, resolution)).astype(np.float32) + 0.5
    labels = rng.integers(0, classes, size=n)
    for i, label in enumerate(labels):
        size = rng.uniform(0.18, 0.32) * resolution
        cx, cy = rng.uniform(size, resolution - size, size=2)
        mask = _inside(SHAPES[label], (xx - cx) / size, (yy - cy) / size)
        colour = rng.uniform(-0.45, 0.45, size=3).astype(np.float32)
        colour += np.sign(colour) * 0.1
        images[i][:, mask] += colour[:, None]
    return images, labels.astype(np.int64)


def _texture(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """A random pattern in [0, 1] over the grid: solid, stripes, checker or dots, at a random
    period, orientation and phase."""
    kind = TEXTURES[rng.integers(len(TEXTURES))]
    if kind == "solid":
        return np.ones_like(xx)
    period = rng.uniform(2.5, 6.0)
    angle = rng.uniform(0, np.pi)
    a = (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period + rng.uniform(0, 2 * np.pi)
    b = (-xx * np.sin(angle) + yy * np.cos(angle)) * 2 * np.pi / period + rng.uniform(0, 2 * np.pi)
    if kind == "stripes":
        return (np.sin(a) > 0).astype(np.float32)
    if kind == "checker":
        return (np.sin(a) * np.sin(b) > 0).astype(np.float32)
    return ((np.cos(a) + np.cos(b)) > 1.0).astype(np.float32)


def _colour(rng: np.random.Generator, away_from: np.ndarray | None = None, distance: float = 0.0) -> np.ndarray:
    """A random RGB colour at least ``distance`` (Euclidean) from ``away_from``."""
    while True:
        colour = rng.uniform(0, 1, size=3).astype(np.float32)
        if away_from is None or np.linalg.norm(colour - away_from) >= distance:
            return colour


def _paint(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray,
           contrast: float, first: np.ndarray) -> None:
    """Fill ``mask`` of ``image`` (3, H, W) with a random texture between ``first`` and a random
    colour pulled towards it by ``contrast`` (0: flat ``first``)."""
    second = first + (rng.uniform(0, 1, size=3).astype(np.float32) - first) * contrast
    pattern = _texture(rng, xx, yy)[mask]
    image[:, mask] = first[:, None] * pattern + second[:, None] * (1 - pattern)


def _place(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, name: str, size: float,
           margin: float) -> np.ndarray:
    """The mask of shape ``name`` at ``size`` pixels, rotated up to 25 degrees, centred at least
    ``margin`` pixels inside the image."""
    resolution = xx.shape[0]
    cx, cy = rng.uniform(margin, resolution - margin, size=2)
    angle = np.deg2rad(rng.uniform(-25, 25))
    dx, dy = (xx - cx) / size, (yy - cy) / size
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return _inside(name, u, v)


def make_textures(n: int = 6000, classes: int = 10, resolution: int = 32, seed: int = 0,
                  noise: float = 0.12, clutter: int = 3, separation: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Textured shapes with clutter (module docstring): ``n`` images (3, resolution, resolution)
    in [0, 1] and labels 0..classes-1 (the order of :data:`TEXTURED`), balanced to within one.
    ``clutter``: at most this many distractors; ``separation``: the least RGB distance between
    the background's and the shape's base colours."""
    if not 2 <= classes <= len(TEXTURED):
        raise ValueError(f"textures: classes must be between 2 and {len(TEXTURED)}, got {classes}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution].astype(np.float32)
    everywhere = np.ones((resolution, resolution), dtype=bool)
    images = np.empty((n, 3, resolution, resolution), dtype=np.float32)
    labels = rng.permutation(np.arange(n) % classes)
    for i, label in enumerate(labels):
        image, background = images[i], _colour(rng)
        _paint(image, everywhere, rng, xx, yy, contrast=rng.uniform(0.1, 0.5), first=background)
        for _ in range(rng.integers(0, clutter + 1)):  # distractors: smaller shapes of any class
            small = rng.uniform(0.08, 0.15) * resolution
            _paint(image, _place(rng, xx, yy, TEXTURED[rng.integers(classes)], small, 0), rng, xx, yy,
                   contrast=rng.uniform(0.2, 0.8), first=_colour(rng))
        size = rng.uniform(0.25, 0.40) * resolution
        _paint(image, _place(rng, xx, yy, TEXTURED[label], size, 0.8 * size), rng, xx, yy,
               contrast=rng.uniform(0.3, 0.8), first=_colour(rng, background, separation))
    images += rng.normal(0.0, noise, size=images.shape).astype(np.float32)
    return np.clip(images, 0.0, 1.0), labels.astype(np.int64)
