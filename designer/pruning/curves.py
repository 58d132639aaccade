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
from designer.pruning.criteria import MAGNITUDE, Criterion, criterion_of, importance_of, magnitude_mask
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
        """Curves from their JSON form (:class:`designer.schemas.CurvesFile`, read strictly), then
        what a schema cannot say: one curve per layer, positive sizes, finite values, a grid in
        [0, 1] in increasing order, no negative distortion (the message names the layer)."""
        from designer.schemas import CurvesFile, read_payload
        check_version(data, "curves")
        payload = read_payload(CurvesFile, data, "curves")
        if not payload.layers:
            raise ValueError("curves: expected an object with a non-empty 'layers' list")
        layers, names = [], set()
        for i, layer in enumerate(payload.layers):
            where = f"curves: layers[{i}]"
            if not layer.name:
                raise ValueError(f"{where}.name: expected a non-empty string, got {layer.name!r}")
            if layer.name in names:
                raise ValueError(f"{where}.name: {layer.name!r} appears twice (each layer needs one curve)")
            names.add(layer.name)
            for key in ("weights", "macs"):
                if getattr(layer, key) < 1:
                    raise ValueError(f"{where}.{key}: expected a positive whole number, got {getattr(layer, key)!r}")
            sparsity, distortion = layer.sparsity, layer.distortion
            if not sparsity or len(sparsity) != len(distortion):
                raise ValueError(f"{where} needs as many distortions as sparsities (at least one)")
            for key, values in (("sparsity", sparsity), ("distortion", distortion)):
                if not all(math.isfinite(v) for v in values):
                    raise ValueError(f"{where}.{key}: every value must be a finite number")
            if not all(0.0 <= s <= 1.0 for s in sparsity):
                raise ValueError(f"{where}.sparsity: every value must be in [0, 1]")
            if any(b < a for a, b in zip(sparsity, sparsity[1:])):
                raise ValueError(f"{where}.sparsity: the grid must be in increasing order")
            if any(d < 0 for d in distortion):
                raise ValueError(f"{where}.distortion: a distortion (a squared error) cannot be negative")
            layers.append(LayerCurve(layer.name, layer.weights, layer.macs, [float(s) for s in sparsity],
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


@dataclass
class Measurement:
    """What every layer's curve reads: the chain of segments, each segment's cached input and the
    reference logits (on the calibration batch, BatchNorm as the caller set it), and the settings."""

    chain: list
    cached: list[torch.Tensor]
    reference: torch.Tensor
    grid: list[float]
    criterion: Criterion
    points: int | None
    chunk: int
    worst_case: bool

    @classmethod
    def of(cls, model: nn.Module, inputs: torch.Tensor, **settings) -> Measurement:
        chain = segments(model, [name for name, _ in prunable_layers(model)])
        cached, x = [], inputs
        for segment in chain:
            cached.append(x)
            x = segment.run(x)
        return cls(chain, cached, x, **settings)

    def curve(self, name: str, module: nn.Module, h: torch.Tensor | None, macs: int,
              importance: torch.Tensor | None = None) -> LayerCurve:
        """One layer's curve: its masks on the grid, each distinct one measured (or interpolated);
        ``importance``: the criterion's, when the caller has it (else computed here)."""
        original = module.weight.detach().clone()
        current = original != 0
        if importance is None:
            importance = importance_of(self.criterion, original, h)
        masks = [magnitude_mask(original, s, current, self.criterion, importance=importance) for s in self.grid]
        kept = [int(m.sum()) for m in masks]
        distinct = sorted(set(kept), key=kept.index)
        if self.points is not None:
            distinct = measured_points(sorted(distinct, reverse=True), self.points)
        # each point's distortion with that point's weights: re-fitted where the criterion does
        weights = torch.stack([self.criterion.pruned(original, masks[kept.index(k)], h) for k in distinct])
        by_kept = dict(zip(distinct, self.distortions(name, weights)))
        return LayerCurve(name, original.numel(), macs, [1 - k / original.numel() for k in kept],
                          interpolate(kept, by_kept))

    def distortions(self, name: str, weights: torch.Tensor) -> list[float]:
        """The logits' distortion with layer ``name`` holding each of ``weights`` (stacked along
        the first dimension) in turn, everything else as it is: the suffix of the chain from the
        layer's segment, ``chunk`` weights in one batched forward. What a curve over any choice
        per layer reads (sparsities here, bit-widths in :mod:`designer.quantization.curves`)."""
        first = next(i for i, segment in enumerate(self.chain) if name in segment.layers)

        def suffix(weight: torch.Tensor) -> torch.Tensor:
            y = self.chain[first].run(self.cached[first], override=(name, weight))
            for later in self.chain[first + 1:]:
                y = later.run(y)
            error = per_sample(y, self.reference)
            return error.max() if self.worst_case else error.mean()

        chunk = self.chunk
        return torch.cat([torch.func.vmap(suffix)(weights[i:i + chunk])
                          for i in range(0, len(weights), chunk)]).tolist()


@dataclass
class LayerTask:
    """One layer's curve as a task a Dask worker runs (:func:`layer_curve`): the model, the
    calibration batch, the layer's H and importance (when known) and the settings, all picklable."""

    model: nn.Module
    inputs: torch.Tensor
    name: str
    hessian: torch.Tensor | None
    importance: torch.Tensor | None
    macs: int
    recalibrate_bn: bool
    settings: dict


@torch.no_grad()
def layer_curve(task: LayerTask) -> LayerCurve:
    """:func:`distortion_curves` for the one layer of ``task``, from scratch (in a worker)."""
    model = task.model.eval()
    with batch_statistics(model) if task.recalibrate_bn else nullcontext():
        measurement = Measurement.of(model, task.inputs, **task.settings)
        return measurement.curve(task.name, model.get_submodule(task.name), task.hessian, task.macs, task.importance)


def _user_modules(model: nn.Module) -> list[str]:
    """The modules defining the model's classes that are neither torch's nor ours: a worker may not
    import them (a file loaded by ``--model path.py:factory`` has no importable name), so their
    classes are sent by value."""
    names = {type(m).__module__ for m in model.modules()}
    return sorted(n for n in names if n.split(".")[0] not in ("torch", "designer", "builtins"))


@torch.no_grad()
def distortion_curves(model: nn.Module, inputs: torch.Tensor, grid: list[float] | None = None,
                      worst_case: bool = False, recalibrate_bn: bool = True, progress: bool = False,
                      chunk: int = 16, macs: dict[str, int] | None = None, criterion: Criterion | str = MAGNITUDE,
                      desc: str = "distortion curves", points: int | None = None,
                      hessians: dict[str, torch.Tensor] | None = None, scheduler: str | None = "serial",
                      importances: dict[str, torch.Tensor] | None = None) -> Curves:
    """Distortion of the logits on ``inputs`` as each prunable layer alone is pruned (see module doc).

    The distinct masks of one layer are evaluated ``chunk`` at a time in one batched forward
    (``torch.func.vmap`` over the pruned weight). ``points``: measure at most this many grid
    points per layer and interpolate the rest (None: measure every one). ``hessians``: the
    layers' H for a criterion that reads it, when the caller has them (:func:`calibration_hessians`
    with the same ``recalibrate_bn``); measured here otherwise. ``importances``: each layer's
    importance under the criterion, when the caller has them (ExactOBS's path is seconds a layer:
    a pruning round computes it once for the curves and the masks). ``scheduler``: ``"serial"``
    (here), ``"local"`` or None (a local Dask cluster) or a Dask scheduler's address
    (``tcp://host:8786``): the layers are independent, so each is a task (:func:`layer_curve`)
    and the curves are the serial ones."""
    if points is not None and (isinstance(points, bool) or not isinstance(points, int) or points < 2):
        raise ValueError(f"points: at least 2 measured points per layer, got {points!r}")
    settings = {"grid": sorted(set(grid if grid is not None else default_grid())), "criterion": criterion_of(criterion),
                "points": points, "chunk": chunk, "worst_case": worst_case}
    model.eval()
    macs = macs if macs is not None else layer_macs(model, inputs)
    layers = prunable_layers(model)
    with batch_statistics(model) if recalibrate_bn else nullcontext():
        if hessians is None:
            hessians = layer_hessians(model, inputs, layers) if settings["criterion"].needs_hessian else {}
        importances = importances or {}
        if scheduler != "serial":
            from solvers.parallel import run_all
            tasks = [LayerTask(model, inputs, name, hessians.get(name), importances.get(name), macs[name],
                               recalibrate_bn, settings) for name, _ in layers]
            bar = tqdm(total=len(tasks), desc=desc, disable=not progress, leave=False, unit="layer")
            curves = run_all(layer_curve, tasks, None if scheduler == "local" else scheduler,
                             progress=lambda done, total, _: bar.update(1), by_value=_user_modules(model))
            bar.close()
            return Curves(curves)
        measurement = Measurement.of(model, inputs, **settings)
        return Curves([measurement.curve(name, module, hessians.get(name), macs[name], importances.get(name))
                       for name, module in tqdm(layers, desc=desc, disable=not progress, leave=False, unit="layer")])
