"""Latency as a budget of the design program: a per-layer linear model, fitted on the user's
device, that the MILP uses exactly as it uses MACs.

Model. Every conv or linear layer (:class:`designer.families.base.Layer`) of a network costs

    latency(layer) = a_kind * MACs + b_kind * bytes + c_kind            (milliseconds)

with ``bytes`` = (input + output elements + weights) x bytes per element, and ``kind`` one of
``pointwise`` (1x1 conv), ``spatial`` (k x k conv, k > 1), ``depthwise`` (grouped conv) and
``linear``; the network's latency is the sum over its layers (BN, activations and additions
ride on the bytes term). Each term is affine in a block's input width, like MACs, so the cell
MILP (:mod:`designer.design.milp`, equation D6) takes it as a third cost and its relaxation and
exactness arguments hold unchanged: the modelled latency of a returned design equals
:meth:`LatencyProfile.predict` of its spec, and the bound is a bound for the modelled latency.

Profile. :func:`profile` times single blocks of every registered family over a grid of widths,
kernels, strides and resolutions (inference, warm-up then the median of repeated timings, the
device synchronised), and fits the 12 coefficients by non-negative least squares on the blocks'
summed features. The profile records the device, torch version, precision and batch, and
round-trips through JSON.
"""

from __future__ import annotations

import itertools
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from designer.families.base import Layer

KINDS = ("pointwise", "spatial", "depthwise", "linear")


def layer_kind(layer: Layer) -> str:
    if layer.kind == "linear":
        return "linear"
    if layer.groups > 1:
        return "depthwise"
    return "pointwise" if layer.k == 1 else "spatial"


def layer_features(layer: Layer, bytes_per_element: int, batch: int = 1) -> np.ndarray:
    """The 12 features of one layer at ``batch``: (MACs, bytes, 1) in its kind's slots, zeros elsewhere."""
    row = np.zeros(3 * len(KINDS))
    i = 3 * KINDS.index(layer_kind(layer))
    moved = (batch * (layer.input_elements + layer.output_elements) + layer.weights) * bytes_per_element
    row[i:i + 3] = (batch * layer.macs, moved, 1)
    return row


@dataclass
class LatencyProfile:
    """Fitted per-kind coefficients (milliseconds per MAC, per byte, per layer) and where they
    were measured. ``fit`` records the fit's median and worst relative error on its samples."""

    coefficients: dict[str, list[float]]
    device: str
    torch_version: str
    precision: str
    batch: int
    bytes_per_element: int
    fit: dict[str, float] = field(default_factory=dict)

    def layer_ms(self, layer: Layer) -> float:
        kind = layer_kind(layer)
        i = 3 * KINDS.index(kind)
        return float(layer_features(layer, self.bytes_per_element, self.batch)[i:i + 3] @ np.array(self.coefficients[kind]))

    def layers_ms(self, layers: list[Layer]) -> float:
        return sum(self.layer_ms(layer) for layer in layers)

    def predict(self, spec) -> float:
        """Modelled milliseconds of ``spec`` (a :class:`~designer.spec.NetworkSpec`) at the profile's batch."""
        from designer.costs import count
        return self.layers_ms(count(spec, self.bytes_per_element).layers)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyProfile:
        if not isinstance(data, dict) or not isinstance(data.get("coefficients"), dict):
            raise ValueError("profile: expected an object with 'coefficients' per layer kind")
        missing = sorted(set(KINDS) - set(data["coefficients"]))
        if missing:
            raise ValueError(f"profile: coefficients lack {', '.join(missing)}")
        for kind in KINDS:
            values = data["coefficients"][kind]
            if (not isinstance(values, list) or len(values) != 3
                    or not all(isinstance(v, (int, float)) and v >= 0 and np.isfinite(v) for v in values)):
                raise ValueError(f"profile: coefficients.{kind} must be three finite non-negative numbers")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> LatencyProfile:
        from designer.checks import load_json
        return cls.from_dict(load_json(path, "profile"))


def _grid(quick: bool) -> list[tuple[str, int, int, int, int, int]]:
    """(family, width, inner width, kernel, stride, resolution) of the blocks timed."""
    from designer.families import NAMES
    widths = (16, 48) if quick else (16, 32, 64, 128)
    kernels = (3, 5) if quick else (3, 5, 7)
    resolutions = (8, 16) if quick else (8, 16, 32)
    rows = []
    for family, width, k, res in itertools.product(NAMES, widths, kernels, resolutions):
        for ratio in ((1.0,) if quick else (0.5, 1.0, 2.0)):
            rows.append((family, width, max(8, int(width * ratio)), k, 1, res))
    return rows


def profile(device: str = "cpu", precision: str = "fp32", batch: int = 1, quick: bool = False,
            bytes_per_element: int = 4, repeats: int = 10, progress=None) -> LatencyProfile:
    """Time blocks of every family on ``device`` and fit the model (see the module docstring)."""
    import torch

    from designer.checkpoint import resolve_device
    from designer.families import family as block_family
    target = resolve_device(device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    rows, times = [], []
    grid = _grid(quick)
    for index, (name, width, btn, k, stride, res) in enumerate(grid):
        blocks = block_family(name)
        module = blocks.module(width, width, btn, k, stride, first=False).to(target).eval()
        x = torch.randn(batch, width, res, res, device=target)
        layers, _ = blocks.layers("b", width, width, btn, k, stride, res, first=False)
        rows.append(sum(layer_features(layer, bytes_per_element, batch) for layer in layers))
        times.append(_median_ms(module, x, dtype, repeats))
        if progress is not None:
            progress(index + 1, len(grid))
    features, targets = np.array(rows), np.array(times)
    from scipy.optimize import nnls
    scale = np.maximum(features.max(axis=0), 1e-30)  # columns of very different sizes: fit scaled
    solution, _ = nnls(features / scale, targets)
    coefficients = solution / scale
    predicted = features @ coefficients
    errors = np.abs(predicted - targets) / np.maximum(targets, 1e-9)
    table = {kind: [float(v) for v in coefficients[3 * i:3 * i + 3]] for i, kind in enumerate(KINDS)}
    name = torch.cuda.get_device_name(target) if target.type == "cuda" else f"cpu ({platform.processor() or 'x86'})"
    return LatencyProfile(table, name, torch.__version__, precision, batch, bytes_per_element,
                          {"median_error": float(np.median(errors)), "worst_error": float(errors.max()),
                           "samples": float(len(targets))})


def _median_ms(module, x, dtype, repeats: int) -> float:
    import torch
    cuda = x.device.type == "cuda"
    autocast = torch.autocast(x.device.type, dtype=dtype) if dtype is not None else None
    times = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            if cuda:
                torch.cuda.synchronize(x.device)
            start = time.perf_counter()
            if autocast is not None:
                with autocast:
                    module(x)
            else:
                module(x)
            if cuda:
                torch.cuda.synchronize(x.device)
            if i >= 3:  # three warm-ups
                times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))
