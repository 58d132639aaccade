"""Per-layer output-distortion curves (Xu et al., ICCV 2023).

For every prunable layer (Conv2d, Linear) and every sparsity on a grid, prune that layer
alone by weight magnitude (or by a criterion's importance, with the weights it keeps: OBS re-fits
the survivors, :mod:`designer.pruning.obs`) and measure how far the network's logits move on a calibration
batch: the mean squared error against the unpruned network (or, with ``worst_case``, the
largest per-sample MSE). BatchNorm statistics are re-estimated on the calibration batch for
every measurement (``recalibrate_bn``): without it, pruning shifts every later activation's
statistics and the curves go flat at high sparsity.

Speed: no autograd; the model is cut into a chain of segments where a single tensor flows
(:mod:`designer.pruning.segments`, by ``torch.fx``: any traceable module, ours or a user's),
each segment's input is cached, so each measurement runs only the segment holding the pruned
layer and the ones after it; grid points that keep the same number of weights are measured once,
and the masks of one layer go through the suffix together, stacked along a batched weight
(``torch.func.vmap``). With ``points``, only that many grid points are measured per layer
(:func:`measured_points`: spaced geometrically in the fraction kept, so denser where the curve
bends, at high sparsity) and the others are read off a monotone piecewise-cubic interpolation
(PCHIP, in log distortion): the curve's cost falls with the points measured, its error is
measured in ``benchmarks/curves.py``.

Curves round-trip through JSON:
``{"layers": [{"name", "weights", "macs", "sparsity": [...], "distortion": [...]}]}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from designer import files
from designer.pruning.hessian import layer_hessians
from designer.pruning.measure import per_sample
from designer.pruning.segments import segments
from designer.schemas import FORMAT_VERSION, check_version
from designer.user_model import count_macs

PRUNABLE = (nn.Conv2d, nn.Linear)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The convs and linears whose weights the model uses by calling them: not the output
    projection of ``nn.MultiheadAttention``, whose weight it reads directly (a mask or a hook
    there would never take effect)."""
    inside = {f"{name}.{child}" for name, module in model.named_modules()
              if isinstance(module, nn.MultiheadAttention) for child, _ in module.named_children()}
    found, seen = [], set()
    for name, module in model.named_modules():
        # a weight shared by two layers (tied) is one weight: counted, measured and masked once,
        # by the first layer holding it (the tie itself is kept: both modules hold the parameter)
        weight = getattr(module, "weight_orig", getattr(module, "weight", None))
        if isinstance(module, PRUNABLE) and name not in inside and id(weight) not in seen:
            seen.add(id(weight))
            found.append((name, module))
    return found


def kept_count(weight: torch.Tensor, sparsity: float, current: torch.Tensor | None = None) -> int:
    """How many weights :func:`magnitude_mask` keeps at ``sparsity``: ``n - floor(sparsity n)``,
    raised to the floor (one weight per output channel that still has one) and capped by the
    weights ``current`` still keeps. The floor is *part* of this count, never added on top."""
    if not 0.0 <= sparsity <= 1.0 or math.isnan(sparsity):
        raise ValueError(f"sparsity: must be in [0, 1], got {sparsity}")
    n = weight.numel()
    alive = current.reshape(weight.shape[0], -1) if current is not None else None
    floor = int(alive.any(dim=1).sum()) if alive is not None else weight.shape[0]
    # 1e-6: a sparsity written as 1 - kept / n (curves, allocations) gives back exactly kept
    keep = max(n - int(math.floor(sparsity * n + 1e-6)), floor)
    return min(keep, int(alive.sum())) if alive is not None else keep


class Criterion:
    """A within-layer criterion: each weight's importance (larger is kept first) and the weights a
    layer keeps under a mask. A new one is a class with a ``name``, :meth:`importance` and, if it
    re-fits the kept weights, :meth:`pruned`, passed to curves, masks and pruning as an object
    (Torch-Pruning's way); :data:`CRITERIA` lists the built-in ones by name for the CLI.
    ``needs_hessian``: it reads the layer's H (:mod:`designer.pruning.hessian`), passed as
    ``hessian``."""

    name: str
    needs_hessian: bool = False

    def importance(self, weight: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def pruned(self, weight: torch.Tensor, mask: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's weights under ``mask`` (zeros where it is False): the survivors as they were."""
        return weight.detach() * mask


class Magnitude(Criterion):
    """|w|: the smallest weights go first."""

    name = "magnitude"

    def importance(self, weight: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
        return weight.detach().abs()


class OBS(Criterion):
    """Optimal Brain Surgeon (:mod:`designer.pruning.obs`): weights by their saliency
    ``w^2 / [H^-1]_ii`` (along ExactOBS's greedy path on small layers) and the survivors
    re-fitted to the layer's calibration outputs;
    ``damp``: H's damping, a fraction of its mean diagonal."""

    name = "obs"
    needs_hessian = True

    def __init__(self, damp: float = 0.01):
        if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not 0 < damp < 1:
            raise ValueError(f"damp: a fraction of H's mean diagonal in (0, 1), got {damp!r}")
        self.damp = float(damp)

    def _hessian(self, hessian: torch.Tensor | None) -> torch.Tensor:
        if hessian is None:
            raise ValueError("obs: needs the layer's Hessian (designer.pruning.hessian.layer_hessians)")
        return hessian

    def importance(self, weight: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
        from designer.pruning.obs import greedy_saliency, saliency
        if self.greedy(weight, hessian):
            return greedy_saliency(weight, self._hessian(hessian), self.damp)
        return saliency(weight, self._hessian(hessian), self.damp)

    def greedy(self, weight: torch.Tensor, hessian: torch.Tensor | None) -> bool:
        """Whether the layer's mask follows ExactOBS's greedy path (small enough) or the one-shot
        saliency (:data:`designer.pruning.obs.GREEDY_WORK`)."""
        from designer.pruning.obs import GREEDY_WORK
        side = self._hessian(hessian).shape[-1]
        return weight.shape[0] * float(side) ** 3 <= GREEDY_WORK

    def pruned(self, weight: torch.Tensor, mask: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
        from designer.pruning.obs import reconstruct
        return reconstruct(weight, mask, self._hessian(hessian), self.damp)

    def __repr__(self) -> str:
        return f"OBS(damp={self.damp:g})"


MAGNITUDE = Magnitude()
CRITERIA: dict[str, Criterion] = {MAGNITUDE.name: MAGNITUDE, "obs": OBS()}


def criterion_of(criterion: Criterion | str) -> Criterion:
    """A criterion object, or the built-in one of that name."""
    if isinstance(criterion, Criterion):
        return criterion
    if criterion not in CRITERIA:
        raise ValueError(f"criterion: must be one of {', '.join(CRITERIA)} (or a Criterion), got {criterion!r}")
    return CRITERIA[criterion]


def importance_of(criterion: Criterion, weight: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
    """``criterion``'s importance of ``weight``; the Hessian only to a criterion that reads it
    (a user's ``importance(self, weight)`` keeps working)."""
    return criterion.importance(weight, hessian) if criterion.needs_hessian else criterion.importance(weight)


def magnitude_mask(weight: torch.Tensor, sparsity: float, current: torch.Tensor | None = None,
                   criterion: Criterion | str = MAGNITUDE, hessian: torch.Tensor | None = None,
                   importance: torch.Tensor | None = None) -> torch.Tensor:
    """Keep exactly :func:`kept_count` weights: each output channel's most important surviving
    weight (so no channel dies), then the most important others by ``criterion`` (magnitude by
    default; ``hessian`` for one that reads it; ``importance``: the criterion's, computed
    before, as for every point of a curve); never one that ``current`` already removed."""
    criterion = criterion_of(criterion)
    keep = kept_count(weight, sparsity, current)
    if importance is None:
        importance = importance_of(criterion, weight, hessian)
    magnitude = importance.reshape(weight.shape[0], -1).float().clone()
    alive = (current.reshape(magnitude.shape).bool() if current is not None
             else torch.ones_like(magnitude, dtype=torch.bool))
    magnitude[~alive] = -1.0
    mask = torch.zeros(magnitude.shape, dtype=torch.bool, device=weight.device)
    rows = torch.nonzero(alive.any(dim=1)).flatten()
    mask[rows, magnitude[rows].argmax(dim=1)] = True
    rest = keep - int(mask.sum())
    if rest > 0:
        candidates = torch.where(mask, torch.full_like(magnitude, -2.0), magnitude).flatten()
        mask.view(-1)[torch.topk(candidates, rest, sorted=False).indices] = True
    return mask.reshape(weight.shape)


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Within the block, BatchNorm normalises with the statistics of the batch it sees (the
    re-estimation on one calibration batch) and updates nothing, so the forward is a pure
    function that ``torch.func.vmap`` can batch; buffers and modes are restored after."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats, m.running_mean, m.running_var) for m in norms]
    try:
        for m in norms:
            m.train()
            m.track_running_stats = False
            m.running_mean = m.running_var = None
        yield
    finally:
        for m, (mode, track, mean, var) in zip(norms, saved):
            m.train(mode)
            m.track_running_stats = track
            m.running_mean, m.running_var = mean, var


def calibration_hessians(model: nn.Module, calibration: torch.Tensor, layers: list[tuple[str, nn.Module]],
                         recalibrate_bn: bool = True, means: dict | None = None) -> dict[str, torch.Tensor]:
    """Each layer's H (:func:`designer.pruning.hessian.layer_hessians`) on the inputs it sees now,
    in eval mode with BatchNorm as the curves run it (``recalibrate_bn``: the batch's statistics);
    ``means``: filled with each layer's mean input. The one place curves, pruning rounds and N:M
    take their Hessians from."""
    model.eval()
    with batch_statistics(model) if recalibrate_bn else nullcontext(), torch.no_grad():
        return layer_hessians(model, calibration, layers, means=means)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> None:
    """Re-estimate every BatchNorm's running statistics on ``inputs`` (cumulative average)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    mode = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for start in range(0, len(inputs), batch_size):
        model(inputs[start:start + batch_size])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(mode)


@dataclass
class LayerCurve:
    name: str
    weights: int
    macs: int
    sparsity: list[float]
    distortion: list[float]

    def kept_weights(self) -> list[float]:
        return [self.weights * (1 - s) for s in self.sparsity]


@dataclass
class Curves:
    layers: list[LayerCurve]

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "layers": [asdict(layer) for layer in self.layers]}

    def save(self, path: str | Path) -> None:
        files.write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_dict(cls, data: dict) -> Curves:
        """Curves from their JSON form, every field checked (the message names the layer)."""
        check_version(data, "curves")
        if not isinstance(data, dict) or not isinstance(data.get("layers"), list) or not data["layers"]:
            raise ValueError("curves: expected an object with a non-empty 'layers' list")
        fields = ("name", "weights", "macs", "sparsity", "distortion")
        layers, names = [], set()
        for i, layer in enumerate(data["layers"]):
            where = f"curves: layers[{i}]"
            if not isinstance(layer, dict):
                raise ValueError(f"{where}: expected an object with {', '.join(fields)}")
            missing = set(fields) - set(layer)
            if missing:
                raise ValueError(f"{where} lacks {', '.join(sorted(missing))}")
            name = layer["name"]
            if not isinstance(name, str) or not name:
                raise ValueError(f"{where}.name: expected a non-empty string, got {name!r}")
            if name in names:
                raise ValueError(f"{where}.name: {name!r} appears twice (each layer needs one curve)")
            names.add(name)
            for key in ("weights", "macs"):
                value = layer[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{where}.{key}: expected a positive whole number, got {value!r}")
            sparsity, distortion = layer["sparsity"], layer["distortion"]
            if not isinstance(sparsity, list) or not isinstance(distortion, list) or not sparsity \
                    or len(sparsity) != len(distortion):
                raise ValueError(f"{where} needs as many distortions as sparsities (at least one)")
            for key, values in (("sparsity", sparsity), ("distortion", distortion)):
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           for v in values):
                    raise ValueError(f"{where}.{key}: every value must be a finite number")
            if not all(0.0 <= s <= 1.0 for s in sparsity):
                raise ValueError(f"{where}.sparsity: every value must be in [0, 1]")
            if any(b < a for a, b in zip(sparsity, sparsity[1:])):
                raise ValueError(f"{where}.sparsity: the grid must be in increasing order")
            if any(d < 0 for d in distortion):
                raise ValueError(f"{where}.distortion: a distortion (a squared error) cannot be negative")
            layers.append(LayerCurve(name, layer["weights"], layer["macs"], [float(s) for s in sparsity],
                                     [float(d) for d in distortion]))
        return cls(layers)

    @classmethod
    def load(cls, path: str | Path) -> Curves:
        from designer.checks import load_json
        return cls.from_dict(load_json(path, "curves"))


def layer_macs(model: nn.Module, inputs: torch.Tensor) -> dict[str, int]:
    """MACs of every prunable layer on one input, as torch's ``FlopCounterMode`` counts them
    (FLOPs / 2): the one counter for every module a user brings (``inspect --model``,
    :func:`designer.pruning.groups.count_costs`). A linear layer applied to every token counts
    once per token; a layer the forward pass never calls counts 0."""
    macs = count_macs(model, inputs[:1])[1]
    model.eval()  # as before: curves and pruning measure in eval mode
    return {name: macs.get(name, 0) for name, _ in prunable_layers(model)}


def default_grid(points: int = 101) -> list[float]:
    return [i / (points - 1) for i in range(points)]


def measured_points(kept: list[int], points: int) -> list[int]:
    """Which of a layer's distinct kept counts (largest first) to measure: the first and the
    last, and the ones nearest to ``points`` counts spaced geometrically between them."""
    if points >= len(kept):
        return list(kept)
    first, last = kept[0], kept[-1]
    wanted = [first * (last / first) ** (i / (points - 1)) for i in range(points)]
    return sorted({min(kept, key=lambda k: abs(math.log(k / w))) for w in wanted}, reverse=True)


def interpolate(kept: list[int], measured: dict[int, float]) -> list[float]:
    """Distortion at every count in ``kept`` from the ``measured`` ones: PCHIP (monotone
    between monotone data, no overshoot) over the log of the fraction kept, in log distortion;
    a measured zero (the unpruned layer) stays zero, as does everything above it."""
    if all(k in measured for k in kept):
        return [measured[k] for k in kept]
    from scipy.interpolate import PchipInterpolator  # a dependency of the pruning path only
    xs = sorted(measured)
    floor = min((v for v in measured.values() if v > 0), default=1.0) * 1e-3  # log(0) has no value
    curve = PchipInterpolator(np.log(xs), np.log([max(measured[x], floor) for x in xs]))
    values = []
    for k in kept:
        if k in measured:
            values.append(measured[k])
        else:
            value = float(np.exp(curve(math.log(k))))
            values.append(0.0 if value <= floor * (1 + 1e-9) else value)
    return values


@torch.no_grad()
def distortion_curves(model: nn.Module, inputs: torch.Tensor, grid: list[float] | None = None,
                      worst_case: bool = False, recalibrate_bn: bool = True, progress: bool = False,
                      chunk: int = 16, macs: dict[str, int] | None = None, criterion: Criterion | str = MAGNITUDE,
                      desc: str = "distortion curves", points: int | None = None,
                      hessians: dict[str, torch.Tensor] | None = None) -> Curves:
    """Distortion of the logits on ``inputs`` as each prunable layer alone is pruned (see module doc).

    The distinct masks of one layer are evaluated ``chunk`` at a time in one batched forward
    (``torch.func.vmap`` over the pruned weight). ``points``: measure at most this many grid
    points per layer and interpolate the rest (None: measure every one). ``hessians``: the
    layers' H for a criterion that reads it, when the caller has them (:func:`calibration_hessians`
    with the same ``recalibrate_bn``); measured here otherwise."""
    if points is not None and (isinstance(points, bool) or not isinstance(points, int) or points < 2):
        raise ValueError(f"points: at least 2 measured points per layer, got {points!r}")
    grid = sorted(set(grid if grid is not None else default_grid()))
    criterion = criterion_of(criterion)
    model.eval()
    macs = macs if macs is not None else layer_macs(model, inputs)
    layers = prunable_layers(model)
    chain = segments(model, [name for name, _ in layers])
    context = batch_statistics(model) if recalibrate_bn else nullcontext()
    with context:
        cached = []
        x = inputs
        for segment in chain:
            cached.append(x)
            x = segment.run(x)
        reference = x
        curves = []
        if hessians is None:
            hessians = layer_hessians(model, inputs, layers) if criterion.needs_hessian else {}
        for name, module in tqdm(layers, desc=desc, disable=not progress, leave=False, unit="layer"):
            first = next(i for i, segment in enumerate(chain) if name in segment.layers)
            original = module.weight.detach().clone()
            current = original != 0
            h = hessians.get(name)
            importance = importance_of(criterion, original, h)
            masks = [magnitude_mask(original, s, current, criterion, importance=importance) for s in grid]
            kept = [int(m.sum()) for m in masks]
            distinct = sorted(set(kept), key=kept.index)
            if points is not None:
                distinct = measured_points(sorted(distinct, reverse=True), points)
            # each point's distortion with that point's weights: re-fitted where the criterion does
            weights = torch.stack([criterion.pruned(original, masks[kept.index(k)], h) for k in distinct])

            def suffix(weight: torch.Tensor) -> torch.Tensor:
                y = chain[first].run(cached[first], override=(name, weight))
                for later in chain[first + 1:]:
                    y = later.run(y)
                error = per_sample(y, reference)
                return error.max() if worst_case else error.mean()

            values = torch.cat([torch.func.vmap(suffix)(weights[i:i + chunk]) for i in range(0, len(distinct), chunk)])
            by_kept = dict(zip(distinct, values.tolist()))
            curves.append(LayerCurve(name, original.numel(), macs[name], [1 - k / original.numel() for k in kept],
                                     interpolate(kept, by_kept)))
    return Curves(curves)
