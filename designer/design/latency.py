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

Whole networks cost more than their layers' sum: the stem's input, pooling, the classifier,
and per-call overheads. A profile fitted on networks carries one more coefficient,
``constant_ms`` per network, which the MILP adds once (a constant does not change it).

Profile. :func:`profile` times single blocks of every registered family over a grid of widths,
kernels, strides and resolutions, and (``networks`` > 0) whole random networks of every family
(:func:`random_spec`) at the profile's resolution (inference, warm-up then the median of
repeated timings, the device synchronised), and fits the 13 coefficients by non-negative
least squares: on the networks alone when there are any (what the budget is about), else on
the blocks' summed features. The profile records the device, torch version, precision,
batch and what it was fitted on, and round-trips through JSON.
"""

from __future__ import annotations

import itertools
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from designer import files
from designer.families.base import Layer
from designer.timing import median_forward_seconds

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


PRECISIONS = ("fp32", "bf16", "fp16")  # what a profile may be measured at


@dataclass
class LatencyProfile:
    """Fitted per-kind coefficients (milliseconds per MAC, per byte, per layer) and where they
    were measured. ``fit`` records the fit's median and worst relative error on its samples, its
    median error on held-out samples (``held_out_error``) and the machine's timing ``noise`` (the
    median relative change of samples timed twice)."""

    coefficients: dict[str, list[float]]
    device: str
    torch_version: str
    precision: str
    batch: int
    bytes_per_element: int
    fit: dict[str, float] = field(default_factory=dict)
    constant_ms: float = 0.0  # per network (fitted on whole networks; 0 for a block fit)

    def layer_ms(self, layer: Layer) -> float:
        kind = layer_kind(layer)
        i = 3 * KINDS.index(kind)
        return float(layer_features(layer, self.bytes_per_element, self.batch)[i:i + 3] @ np.array(self.coefficients[kind]))

    def layers_ms(self, layers: list[Layer]) -> float:
        return sum(self.layer_ms(layer) for layer in layers)

    def predict(self, spec) -> float:
        """Modelled milliseconds of ``spec`` (a :class:`~designer.spec.NetworkSpec`) at the profile's batch."""
        from designer.costs import count
        return self.layers_ms(count(spec, self.bytes_per_element).layers) + self.constant_ms

    def to_dict(self) -> dict[str, Any]:
        from designer.schemas import FORMAT_VERSION
        return {"format_version": FORMAT_VERSION, **asdict(self)}

    def save(self, path: str | Path) -> None:
        files.write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyProfile:
        """A profile from its JSON form (:class:`designer.schemas.LatencyProfileFile`, read
        strictly: a profile is data a program wrote, so anything else is a mistake), then what a
        schema cannot say: one coefficient triple, finite and non-negative, per layer kind."""
        from designer.schemas import LatencyProfileFile, check_version, read_payload
        if not isinstance(data, dict) or not isinstance(data.get("coefficients"), dict):
            raise ValueError("profile: expected an object with 'coefficients' per layer kind")
        check_version(data, "profile")
        payload = read_payload(LatencyProfileFile, data, "profile")
        missing = sorted(set(KINDS) - set(payload.coefficients))
        if missing:
            raise ValueError(f"profile: coefficients lack {', '.join(missing)}")
        for kind in KINDS:
            values = payload.coefficients[kind]
            if len(values) != 3 or not all(v >= 0 and np.isfinite(v) for v in values):
                raise ValueError(f"profile: coefficients.{kind} must be three finite non-negative numbers")
        if not np.isfinite(payload.constant_ms):
            raise ValueError(f"profile: constant_ms must be a finite non-negative number, got {payload.constant_ms!r}")
        fields = payload.model_dump(exclude={"format_version"})
        return cls(**{**fields, "coefficients": {k: list(v) for k, v in payload.coefficients.items()}})

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


def random_spec(rng: np.random.Generator, family: str, resolution: int, max_width: int = 512,
                max_depth: int = 4):
    """A random network of ``family`` at ``resolution`` with five stages (strides 2, 2, 2, 2, 1, 2),
    non-decreasing widths up to ``max_width``, inner widths within the family's ratios, the
    family's kernels, depths 1 to ``max_depth``: the kind of spec the design MILP returns."""
    from designer.families import family as block_family
    from designer.spec import NetworkSpec, Stage, Stem
    defaults = block_family(family).defaults
    widths = np.sort(rng.choice(np.arange(16, max_width + 1, 8), size=5))
    stages = []
    for out, stride in zip(widths, (2, 2, 2, 1, 2)):
        lo, hi = defaults.btn_ratio
        btn = int(max(8, round(out * rng.uniform(lo, min(hi, 2.0)) / 8) * 8))
        stages.append(Stage(family, int(out), btn, int(rng.choice(defaults.kernels)), int(rng.integers(1, max_depth + 1)),
                            stride))
    return NetworkSpec(resolution=resolution, stem=Stem(int(rng.choice([16, 24, 32])), 3, 2), stages=stages,
                       num_classes=1000, name=f"random-{family}")


def measure_ms(spec, device: str = "cpu", precision: str = "fp32", batch: int = 1, repeats: int = 10) -> float:
    """Median milliseconds of one forward pass of the built ``spec`` at ``batch`` (inference)."""
    import torch

    from designer.checkpoint import resolve_device
    from designer.network import build
    target = resolve_device(device)
    network = build(spec).to(target).eval()
    x = torch.randn(batch, spec.in_channels, spec.resolution, spec.resolution, device=target)
    return 1e3 * median_forward_seconds(network, x, repeats=repeats, warmups=3, dtype=_dtype(precision))


def _dtype(precision: str):
    """The autocast dtype of a precision name (None: fp32, no autocast)."""
    import torch
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def profile(device: str = "cpu", precision: str = "fp32", batch: int = 1, quick: bool = False,
            bytes_per_element: int = 4, repeats: int = 10, progress=None, networks: int = 0,
            resolution: int = 224, seed: int = 0) -> LatencyProfile:
    """Time blocks of every family on ``device`` (and ``networks`` random whole networks at
    ``resolution``) and fit the model (see the module docstring)."""
    import torch

    from designer.checkpoint import resolve_device
    from designer.families import NAMES, family as block_family
    target = resolve_device(device)
    dtype = _dtype(precision)
    block_rows, block_times = [], []
    grid = _grid(quick) if networks == 0 else []
    total = len(grid) + networks
    def time_block(name: str, width: int, btn: int, k: int, stride: int, res: int) -> float:
        module = block_family(name).module(width, width, btn, k, stride, first=False).to(target).eval()
        x = torch.randn(batch, width, res, res, device=target)
        return 1e3 * median_forward_seconds(module, x, repeats=repeats, warmups=3, dtype=dtype)

    for index, (name, width, btn, k, stride, res) in enumerate(grid):
        layers, _ = block_family(name).layers("b", width, width, btn, k, stride, res, first=False)
        block_rows.append(np.append(sum(layer_features(layer, bytes_per_element, batch) for layer in layers), 0.0))
        block_times.append(time_block(name, width, btn, k, stride, res))
        if progress is not None:
            progress(index + 1, total)
    rng = np.random.default_rng(seed)
    specs = [random_spec(rng, NAMES[index % len(NAMES)], resolution) for index in range(networks)]
    network_rows, network_times = [], []
    for index, spec in enumerate(specs):
        network_rows.append(network_features(spec, bytes_per_element, batch))
        network_times.append(measure_ms(spec, device, precision, batch, repeats))
        if progress is not None:
            progress(len(grid) + index + 1, total)
    rows, times = (network_rows, network_times) if networks else (block_rows, block_times)
    features, targets = np.array(rows), np.array(times)
    # the machine's noise: the first few samples timed again, after all the others
    again = ([measure_ms(spec, device, precision, batch, repeats) for spec in specs[:1]] if networks
             else [time_block(*entry) for entry in grid[:NOISE_SAMPLES]])
    noise = float(np.median(np.abs(np.array(again) - targets[:len(again)]) / np.maximum(targets[:len(again)], 1e-9)))
    coefficients = _fit(features, targets)
    errors = np.abs(features @ coefficients - targets) / np.maximum(targets, 1e-9)
    table = {kind: [float(v) for v in coefficients[3 * i:3 * i + 3]] for i, kind in enumerate(KINDS)}
    name = torch.cuda.get_device_name(target) if target.type == "cuda" else f"cpu ({platform.processor() or 'x86'})"
    return LatencyProfile(table, name, torch.__version__, precision, batch, bytes_per_element,
                          {"median_error": float(np.median(errors)), "worst_error": float(errors.max()),
                           "held_out_error": held_out_error(features, targets), "noise": noise,
                           "samples": float(len(targets)), "on": "networks" if networks else "blocks",
                           "resolution": float(resolution) if networks else 0.0},
                          constant_ms=float(coefficients[-1]))


NOISE_SAMPLES = 6  # samples timed twice to measure the machine's noise


def _fit(features: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Non-negative least squares, the columns scaled (their sizes differ by orders of magnitude)."""
    from scipy.optimize import nnls
    scale = np.maximum(features.max(axis=0), 1e-30)
    solution, _ = nnls(features / scale, targets)
    return solution / scale


def held_out_error(features: np.ndarray, targets: np.ndarray, folds: int = 5) -> float:
    """The fit's median relative error on samples it was not fitted on (``folds``-fold cross
    validation, every sample held out once): what a design's prediction will meet."""
    order = np.random.default_rng(0).permutation(len(targets))
    errors = []
    for fold in np.array_split(order, min(folds, len(targets))):
        rest = np.setdiff1d(order, fold)
        if len(rest) == 0:
            continue
        coefficients = _fit(features[rest], targets[rest])
        errors.extend(np.abs(features[fold] @ coefficients - targets[fold]) / np.maximum(targets[fold], 1e-9))
    return float(np.median(errors)) if errors else float("inf")


def network_features(spec, bytes_per_element: int, batch: int) -> np.ndarray:
    """The 13 features of a whole network: its layers' summed features, then 1 (the constant)."""
    from designer.costs import count
    return np.append(sum(layer_features(layer, bytes_per_element, batch)
                         for layer in count(spec, bytes_per_element).layers), 1.0)
