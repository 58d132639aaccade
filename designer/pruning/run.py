"""The prune job behind `mpdesign prune`, as one call a notebook can make too.

    summary = run_prune(PruneRequest(checkpoint=Path("run/checkpoint.pt"), sparsity=0.9))

:class:`PruneRequest` holds what the command line takes and is checked whole (:meth:`check`,
naming the options) before any curve is measured; :func:`run_prune` loads what is pruned (an
mpdesign checkpoint, a :class:`Subject`, or a user's module), its dataset and calibration
images, prunes by weights (masks, :func:`designer.pruning.prune.prune_model`) or channels (a
smaller network), fine-tunes, writes the output and returns the summary the CLI prints.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from designer import checks, files
from designer.pruning.allocate import METHODS
from designer.pruning.apply import left_out, model_sparsity
from designer.pruning.criteria import CRITERIA, criterion_of
from designer.train.data import check_dataset_fits

MODES = ("weights", "channels")
SCHEDULES = ("iterative", "one-shot")
# defaults that finish in minutes: 13 measured points per layer on 64 images cost 109 s on the
# hand-written CIFAR ResNet-18 where all 41 points on 256 images cost 35 minutes, for a curve error
# of 10% of each layer's range (benchmarks/curves.py; README "Cost of the curves"); one round
# (iterative pruning repeats the curves once per round: ten rounds to 90%)
CALIBRATION = 64
CURVE_POINTS = 13
OBS_COST = 2.8  # OBS's curves over magnitude's: 174.3 s against 61.6 s on the CIFAR ResNet-18 (obs_database.py)
SCHEDULE = "one-shot"


@dataclass
class PruneRequest:
    """What to prune (``checkpoint``, or ``model`` with ``weights`` and ``input_shape``), to what
    budget (``sparsity`` of the weights, or ``keep_macs``), how, and where the result goes."""

    checkpoint: Path | None = None
    model: str | None = None
    weights: Path | None = None
    input_shape: str | None = None
    sparsity: float | None = None
    keep_macs: float | None = None
    method: str = "rd"
    criterion: str = "magnitude"
    mode: str = "weights"
    schedule: str = SCHEDULE
    dataset: str | None = None
    calibration: int = CALIBRATION
    grid: int = 101
    curve_points: int | None = None  # measured grid points per layer, the rest interpolated (None: CURVE_POINTS)
    nm: str | None = None  # "2:4": every layer that fits at N:M instead of a sparsity budget
    correction_rounds: int = 0  # rounds of the correction loop (designer.pruning.correction); 0: the plain DP
    finetune_epochs: int = 1
    device: str = "auto"
    out: Path | None = None  # None: next to the input, named by the mode (default_out)
    force: bool = False  # replace an output that exists (refused otherwise)
    save_curves: Path | None = None
    scheduler: str = "serial"  # where rd's curves are measured: serial, local (Dask) or a scheduler's address
    progress: bool = False

    def check(self) -> None:
        """Every field, naming the command line's options; nothing is loaded."""
        from designer.checkpoint import resolve_device
        self.out = Path(self.out) if self.out is not None else self.default_out()
        checks.writable_file(self.out, "--out")
        checks.choice(self.mode, "--mode", MODES)
        checks.choice(self.method, "--method", METHODS)
        checks.choice(self.schedule, "--schedule", SCHEDULES)
        checks.choice(self.criterion, "--criterion", tuple(CRITERIA))
        checks.scheduler(self.scheduler)
        if self.scheduler != "serial" and (self.mode != "weights" or not self.method.startswith("rd") or self.nm):
            raise ValueError("--scheduler: only the rd methods measure distortion curves (--mode weights)")
        if (self.checkpoint is None) == (self.model is None):
            raise ValueError("give a checkpoint or --model PATH.py:FACTORY (exactly one)")
        if sum(x is not None for x in (self.sparsity, self.keep_macs, self.nm)) != 1:
            raise ValueError("give exactly one of --sparsity (fraction of weights removed), --keep-macs and --nm")
        if self.nm is not None:
            from designer.pruning.nm import parse_nm
            parse_nm(self.nm)
            if self.mode != "weights":
                raise ValueError("--nm: N:M sparsity masks weights (--mode weights)")
        if self.sparsity is not None:
            checks.fraction(self.sparsity, "--sparsity", include_one=False)
        if self.keep_macs is not None:
            checks.fraction(self.keep_macs, "--keep-macs", include_zero=False)
            if self.mode == "weights" and not self.method.startswith("rd"):
                raise ValueError(f"--keep-macs: only the rd methods allocate under a MACs budget; {self.method} "
                                 f"takes --sparsity")
        checks.writable_file(self.save_curves, "--save-curves")
        if self.save_curves is not None and (self.mode != "weights" or not self.method.startswith("rd")):
            raise ValueError("--save-curves: only the rd methods measure distortion curves (--mode weights)")
        checks.integer(self.calibration, "--calibration", minimum=1)
        checks.integer(self.grid, "--grid", minimum=2)
        if self.curve_points is not None:
            checks.integer(self.curve_points, "--curve-points", minimum=2, maximum=self.grid)
            if self.mode != "weights" or not self.method.startswith("rd"):
                raise ValueError("--curve-points: only the rd methods measure distortion curves (--mode weights)")
        checks.integer(self.finetune_epochs, "--finetune-epochs", minimum=0)
        checks.integer(self.correction_rounds, "--correction-rounds", minimum=0)
        if self.correction_rounds and (self.mode != "weights" or not self.method.startswith("rd")):
            raise ValueError("--correction-rounds: only the rd methods allocate on curves (--mode weights)")
        if self.mode == "channels" and self.model is None and criterion_of(self.criterion).needs_hessian:
            raise ValueError(f"--criterion {self.criterion}: channel pruning re-fits the layers of a --model module; an "
                             f"mpdesign checkpoint's channels are its stages' widths, cut without a re-fit (use "
                             f"--criterion magnitude)")
        resolve_device(self.device, "--device")
        from designer.paths import model_file, refuse_clashes
        inputs = {"CHECKPOINT": self.checkpoint, "--model": model_file(self.model), "--weights": self.weights,
                  "--dataset": self.dataset if self.dataset and Path(self.dataset).is_file() else None}
        refuse_clashes(inputs, {"--out": self.out, "--save-curves": self.save_curves}, force=self.force)

    def default_out(self) -> Path:
        """Next to the checkpoint (or the --weights; else here, by the factory's name), named by
        the mode: ``run/checkpoint-pruned.pt`` (weights, N:M) or ``run/checkpoint-channels.pt``,
        so the weights and channel results of one input never overwrite each other."""
        source = self.checkpoint or self.weights
        if source is not None:
            base = Path(source).with_suffix("")
        else:
            base = Path(str(self.model).rpartition(":")[2] or "model")
        return base.with_name(f"{base.name}-{'channels' if self.mode == 'channels' else 'pruned'}.pt")

    def points(self) -> int | None:
        """Grid points measured per layer (None: every point of the grid)."""
        if self.mode != "weights" or not self.method.startswith("rd"):
            return None
        points = self.curve_points or min(CURVE_POINTS, self.grid)
        return None if points >= self.grid else points


def run_prune(request: PruneRequest) -> dict:
    """Check, load, prune, fine-tune, write; the summary (with ``line``, the sentence people read)."""
    from designer.train.data import load_dataset
    from designer.train.loop import TrainConfig, evaluate, train
    request.check()
    subject = load_subject(request.checkpoint, request.model, request.weights, request.input_shape, request.dataset,
                           request.device)
    splits = load_dataset(subject.dataset, seed=subject.metadata.get("seed", 0))
    subject.check_fits(splits)
    if subject.user:  # one float tensor in, logits out: before calibration or training
        from designer.user_model import check_forward
        check_forward(subject.model, tuple(subject.example_input.shape), logits=True)
    on = next(subject.model.parameters()).device
    calib = splits.train.tensors[0][:request.calibration].to(on)
    finetune: Callable | None = None
    if request.finetune_epochs:
        config = TrainConfig(epochs=request.finetune_epochs, lr=0.01, warmup_epochs=0,
                             seed=subject.metadata.get("seed", 0), device=on.type)
        finetune = lambda m: train(m, splits.train, config)  # noqa: E731
    before = evaluate(subject.model, splits.test)
    if request.progress:  # before the long part, what it will cost on this machine as it is now
        print(f"estimate: {estimate(subject.model, calib, request, len(splits.train.tensors[0]))}", file=sys.stderr)
    if request.mode == "channels":
        return _prune_channels(subject, calib, splits, request.sparsity, request.keep_macs, finetune, before,
                               request.out, progress=request.progress, criterion=request.criterion)
    return _prune_weights(subject, calib, splits, request, finetune, before)


def estimate(model, calibration, request: PruneRequest, train_images: int) -> str:
    """What the prune job will cost, from one timed forward pass of the calibration batch: per
    round, one suffix forward (half a whole one, on average) of it per layer and measured point
    (curves), three forwards' worth per training image and epoch (fine-tuning)."""
    import math
    import time

    from designer.pruning.curves import prunable_layers
    from designer.pruning.prune import round_targets
    with torch.no_grad():
        begun = time.perf_counter()
        model.eval()(calibration)
        forward = time.perf_counter() - begun
    if request.nm is not None:
        rounds = 1
    elif request.sparsity is not None:
        rounds = len(round_targets(1 - request.sparsity, 0.2, request.schedule)) if request.mode == "weights" else 1
    else:
        rounds = len(round_targets(request.keep_macs, 0.2, request.schedule)) if request.mode == "weights" else 1
    layers = len(prunable_layers(model))
    points = request.points() or request.grid
    measured = points if request.mode == "weights" and request.method.startswith("rd") and request.nm is None else 0
    if request.mode == "channels":
        measured = 8  # the group curves' kept fractions
    curves = rounds * layers * measured * 0.5 * forward
    if criterion_of(request.criterion).needs_hessian:
        # OBS re-fits every point: its curves cost OBS_COST times magnitude's (benchmarks/obs_database.py)
        curves *= OBS_COST
    tuning = rounds * request.finetune_epochs * 3 * forward * train_images / max(1, len(calibration))
    minutes = (curves + tuning) / 60
    return (f"about {math.ceil(minutes) if minutes >= 1 else '<1'} min on this machine now ({rounds} round(s): "
            f"curves of {layers} layers x {measured} points on {len(calibration)} images, "
            f"{request.finetune_epochs} fine-tuning epoch(s) of {train_images} images each)"
            f"{_hessian_memory(model, request)}")


def _hessian_memory(model, request: PruneRequest) -> str:
    """OBS holds every layer's H (float64) for a round: how much, said before the work starts."""
    if not criterion_of(request.criterion).needs_hessian:
        return ""
    from designer.pruning.curves import prunable_layers
    from designer.pruning.hessian import hessian_bytes
    from designer.pruning.refit import consumers
    layers = consumers(model) if request.mode == "channels" else prunable_layers(model)
    sizes = [hessian_bytes(module) for _, module in layers]
    return (f"; OBS holds {len(sizes)} layers' Hessians, {sum(sizes) / 2 ** 20:,.0f} MiB in all (largest "
            f"{max(sizes, default=0) / 2 ** 20:,.0f} MiB)")


class Subject:
    """What is pruned: an mpdesign network (with its spec and checkpoint metadata) or a user's module."""

    def __init__(self, model, metadata: dict, dataset: str, example_input, user: bool):
        self.model, self.metadata, self.dataset = model, metadata, dataset
        self.example_input, self.user = example_input, user

    def check_fits(self, splits) -> None:
        if not self.user:
            check_dataset_fits(self.model.spec, splits, "--dataset")
            return
        shape = tuple(self.example_input.shape[1:])
        given = (splits.in_channels, splits.resolution, splits.resolution)
        if shape != given:
            raise ValueError(f"--dataset: {splits.name} has {given[0]}x{given[1]}x{given[2]} images, --input-shape "
                             f"says {'x'.join(map(str, shape))}")


def load_subject(checkpoint, model_ref, weights, input_shape, dataset, device) -> Subject:
    from designer.checkpoint import load_checkpoint, resolve_device
    from designer.network import example_input
    from designer.train.data import BUILT_IN
    if checkpoint is not None:
        if weights is not None or input_shape is not None:
            raise ValueError("--weights and --input-shape go with --model; a checkpoint carries both")
        model, metadata = load_checkpoint(checkpoint, device)
        name = dataset or metadata.get("dataset")
        if name is None:
            raise ValueError("--dataset: the checkpoint names no dataset; give one")
        if dataset is None and name not in BUILT_IN:
            # a file may name any path: only a built-in dataset is taken from it unasked
            raise ValueError(f"--dataset: the checkpoint was trained on {name!r}, which is not a built-in dataset; "
                             f"give --dataset (that path, if you trust it) to use it")
        return Subject(model, metadata, name, example_input(model.spec, 1), user=False)
    from designer.pruning.curves import prunable_layers
    from designer.user_model import build_user_model, parse_input_shape
    if input_shape is None:
        raise ValueError("--input-shape: needed with --model, e.g. 1,3,32,32")
    shape = parse_input_shape(input_shape)
    if dataset is None:
        raise ValueError("--dataset: needed with --model (digits, mnist5k, shapes, textures, an .npz or an image folder)")
    target = resolve_device(device)
    model = build_user_model(model_ref, weights).to(target).eval()
    if not list(prunable_layers(model)):
        raise ValueError(f"--model: {model_ref} has no Conv or Linear layer to prune")
    return Subject(model, {"model": model_ref, "weights": None if weights is None else str(weights)}, dataset,
                    torch.zeros(shape, device=target), user=True)


def _prune_weights(subject, calib, splits, request: PruneRequest, finetune, before) -> dict:
    from designer.pruning.curves import default_grid
    from designer.pruning.prune import prune_model
    from designer.train.loop import evaluate
    method, criterion, schedule, out = request.method, request.criterion, request.schedule, request.out
    if request.nm is not None:
        return _prune_nm(subject, calib, splits, request, finetune, before)
    report = prune_model(subject.model, calib, method=method, sparsity=request.sparsity, keep_macs=request.keep_macs,
                         schedule=schedule, finetune=finetune, grid=default_grid(request.grid),
                         progress=request.progress, criterion=criterion, curve_points=request.points(),
                         correction_rounds=request.correction_rounds, scheduler=request.scheduler)
    after = evaluate(subject.model, splits.test)
    if request.save_curves is not None:
        report.first_curves.save(request.save_curves)
    last = report.rounds[-1]
    whole, parameters = model_sparsity(subject.model)
    skipped = left_out(subject.model)
    metadata = {"method": method, "criterion": criterion_of(criterion).name, "schedule": schedule,
                "budget": last["budget"],
                "budget_unit": last["budget_unit"], "kept_weights": last["kept_weights"],
                "sparsity": last["sparsity"], "layer_sparsity": report.sparsity, "dataset": subject.dataset,
                "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
                "model_sparsity": whole, "parameters": parameters, "left_out": skipped}
    _write_masked(subject, out, metadata, {"pruning": report.to_dict(), "test_accuracy": after["accuracy"]})
    return {**metadata, "kept_macs": last["kept_macs"], "rounds": report.rounds, "output": str(out),
            "line": f"{method}: sparsity {last['sparsity']:.4f} of the prunable weights ({last['kept_weights']:,} kept, "
                    f"budget {last['budget']:,} {last['budget_unit']}), {whole:.4f} of all {parameters:,} parameters"
                    f"{_left_out_line(skipped)}, accuracy {before['accuracy']:.4f} -> {after['accuracy']:.4f}; "
                    f"written to {out}"}


def _write_masked(subject, out: Path, metadata: dict, checkpoint_metadata: dict) -> None:
    """A masked model: a user's as a plain state dict any PyTorch user loads, with ``metadata``
    (the masks are permanent); an mpdesign network as a checkpoint with ``checkpoint_metadata``."""
    from designer.checkpoint import save_checkpoint
    if subject.user:
        state = {k: v.detach().cpu() for k, v in subject.model.state_dict().items()}
        files.save_torch({"state_dict": state, "metadata": {**subject.metadata, **metadata}}, out)
    else:
        save_checkpoint(subject.model, out, **{**subject.metadata, **checkpoint_metadata})


def _prune_nm(subject, calib, splits, request: PruneRequest, finetune, before) -> dict:
    """Every layer that fits at N:M (designer.pruning.nm), fine-tuned, written as weights mode is."""
    from designer.pruning.nm import parse_nm, prune_nm
    from designer.train.loop import evaluate
    n, m = parse_nm(request.nm)
    result = prune_nm(subject.model, calib, n, m, request.criterion, finetune)
    after = evaluate(subject.model, splits.test)
    metadata = {"nm": result, "dataset": subject.dataset, "accuracy_before": before["accuracy"],
                "accuracy_after": after["accuracy"]}
    _write_masked(subject, request.out, metadata, {**metadata, "test_accuracy": after["accuracy"]})
    dense = f"; dense (input channels not a multiple of {m}): {', '.join(result['dense'])}" if result["dense"] else ""
    return {"mode": "nm", **result, "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
            "output": str(request.out),
            "line": f"{result['pattern']} ({result['criterion']}): sparsity {result['sparsity']:.4f} of the prunable "
                    f"weights{dense}; accuracy {before['accuracy']:.4f} -> {after['accuracy']:.4f}; written to "
                    f"{request.out}"}


def _left_out_line(skipped: dict[str, str]) -> str:
    """The layers weight pruning left whole, grouped by reason, for the summary line."""
    if not skipped:
        return ""
    by_reason: dict[str, list[str]] = {}
    for name, reason in skipped.items():
        by_reason.setdefault(reason, []).append(name)
    parts = [f"{len(names)} x {reason} (e.g. {names[0]})" for reason, names in by_reason.items()]
    return "; left whole: " + "; ".join(parts)


def _prune_channels(subject, calib, splits, sparsity, keep_macs, finetune, before, out, progress: bool = False,
                    criterion: str = "magnitude") -> dict:
    from designer.timing import median_forward_seconds
    from designer.train.loop import evaluate
    batch = calib[:32]
    if subject.user:
        from designer.pruning.groups import prune_channels
        bar = tqdm(desc="channel groups: distortion curves", unit="group", disable=not progress, leave=False)

        def tick(done: int, total: int, root: str) -> None:  # one group's curve measured
            bar.total = total
            bar.set_postfix_str(root, refresh=False)
            bar.update(done - bar.n)

        result = prune_channels(subject.model, subject.example_input, calib, sparsity=sparsity, keep_macs=keep_macs,
                                progress=tick, criterion=criterion)
        bar.close()
        small, params, macs, widths = result.model, result.params, result.macs, result.kept
        params0, macs0 = result.params_dense, result.macs_dense
    else:
        from designer.checkpoint import save_checkpoint
        from designer.costs import count
        from designer.pruning.channels import prune_stage_widths
        full = count(subject.model.spec)
        params0, macs0 = full.params, full.macs
        result = prune_stage_widths(subject.model, calib,
                                max_params=None if sparsity is None else (1 - sparsity) * full.params,
                                max_macs=None if keep_macs is None else keep_macs * full.macs)
        small, params, macs, widths = result.model, result.params, result.macs, result.kept
    if finetune is not None:
        finetune(small)
    after = evaluate(small, splits.test)
    # median forward seconds of each, in eval mode, on a copy (the pruned model is still being trained)
    dense_latency, small_latency = (median_forward_seconds(copy.deepcopy(m).eval(), batch)
                                    for m in (subject.model, small))
    if subject.user and out.suffix == ".pt2":
        # an ExportedProgram: loads with plain torch.export.load in any process, without the
        # user's source file (but its .module() cannot .train() or .eval() in torch 2.13)
        # the batch dimension dynamic (an example of 2: torch.export specialises a size of 1)
        example = subject.example_input.expand(2, *subject.example_input.shape[1:]).contiguous()
        exported = torch.export.export(small.eval(), (example,),
                                       dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        files.save_exported(exported, out)
    elif subject.user:  # the user's own class, smaller: designer.pruning.load_pruned(FACTORY, out)
        from designer.pruning.pruned_file import save_pruned
        save_pruned(small, out, {**subject.metadata, "test_accuracy": after["accuracy"]})
    else:
        save_checkpoint(small, out, **{**subject.metadata, "test_accuracy": after["accuracy"]})
    return {"mode": "channels", "criterion": criterion, "kept_channels": widths, "params": params, "params_dense": params0, "macs": macs,
            "macs_dense": macs0, "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
            "latency_dense_s": dense_latency, "latency_pruned_s": small_latency, "output": str(out),
            "line": f"channels ({criterion}): params {params0:,} -> {params:,}, MACs {macs0:,} -> {macs:,}, latency "
                    f"{1e3 * dense_latency:.2f} -> {1e3 * small_latency:.2f} ms (batch {len(batch)}), accuracy "
                    f"{before['accuracy']:.4f} -> {after['accuracy']:.4f}; written to {out}"}
