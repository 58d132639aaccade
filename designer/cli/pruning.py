"""`mpdesign prune` and `allocate`: layer-adaptive pruning by rate-distortion allocation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from designer import checks, files
from designer.cli.common import DEVICES, check_dataset_fits, choice_option, console, fail

# the names the library accepts, listed here so that `--help` needs no torch import
# (tests/test_packaging.py checks them against designer.pruning)
PRUNE_METHODS = ("rd", "rd-slope", "global", "lamp", "uniform", "uniform+", "erk")
PRUNE_MODES = ("weights", "channels")
SCHEDULES = ("iterative", "one-shot")
ALLOCATIONS = ("dp", "slope")

app = typer.Typer()


@app.command()
def prune(
    checkpoint: Optional[Path] = typer.Argument(None, help="A checkpoint written by `mpdesign train` (or use --model)."),
    model_ref: Optional[str] = typer.Option(None, "--model", help="Your own model: PATH.py:FACTORY or "
                                                                  "package.module:factory (a callable returning it)."),
    weights: Optional[Path] = typer.Option(None, help="--model: a state dict, or a checkpoint holding one."),
    input_shape: Optional[str] = typer.Option(None, help="--model: the input shape, e.g. 1,3,32,32."),
    sparsity: Optional[float] = typer.Option(None, help="Fraction of prunable weights to remove (channels: of "
                                                        "parameters)."),
    keep_macs: Optional[float] = typer.Option(None, help="Fraction of MACs to keep (rd; channels)."),
    method: str = choice_option("rd", PRUNE_METHODS, "rd, rd-slope, or an allocation baseline."),
    criterion: str = typer.Option("magnitude", help="Within-layer criterion: which weights a layer keeps."),
    mode: str = choice_option("weights", PRUNE_MODES, "weights (masks) or channels (a physically smaller network)."),
    schedule: str = choice_option("iterative", SCHEDULES, "iterative (20% of what is left per round) or one-shot."),
    dataset: Optional[str] = typer.Option(None, help="Dataset for calibration and fine-tuning: digits, mnist5k, "
                                                     "shapes, an .npz or an image folder (default: the checkpoint's)."),
    calibration: int = typer.Option(256, help="Calibration images (the first of the training split)."),
    grid: int = typer.Option(101, help="Sparsity grid points per layer."),
    finetune_epochs: int = typer.Option(1, help="Fine-tuning epochs after each round (0: none)."),
    device: str = choice_option("auto", DEVICES, "auto (CUDA when there is one), cpu or cuda[:N]: curves, BN "
                                                 "re-estimation and fine-tuning run there."),
    out: Path = typer.Option(Path("pruned.pt"), help="Output: a checkpoint (mpdesign networks); for --model, a "
                                                     "state_dict + metadata file (weights), or (channels) your "
                                                     "module smaller: load_pruned(FACTORY, OUT), or an "
                                                     "ExportedProgram when OUT ends in .pt2."),
    save_curves: Optional[Path] = typer.Option(None, help="rd: also write the first round's distortion curves "
                                                          "here (what `allocate` reads)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Prune a trained network - an mpdesign checkpoint or your own module - with rate-distortion
    allocation or a baseline; weights (masks) or channels (a smaller module)."""
    from designer.checkpoint import resolve_device
    from designer.pruning.allocate import METHODS
    from designer.pruning.curves import CRITERIA
    from designer.train.data import load_dataset
    from designer.train.loop import TrainConfig, evaluate, train as train_loop
    try:  # every argument before any curve is measured
        checks.writable_file(out, "--out")
        checks.choice(mode, "--mode", PRUNE_MODES)
        checks.choice(method, "--method", METHODS)
        checks.choice(schedule, "--schedule", SCHEDULES)
        checks.choice(criterion, "--criterion", tuple(CRITERIA))
        if (checkpoint is None) == (model_ref is None):
            raise ValueError("give a checkpoint or --model PATH.py:FACTORY (exactly one)")
        if (sparsity is None) == (keep_macs is None):
            raise ValueError("give exactly one of --sparsity (fraction of weights removed) and --keep-macs")
        if sparsity is not None:
            checks.fraction(sparsity, "--sparsity", include_one=False)
        if keep_macs is not None:
            checks.fraction(keep_macs, "--keep-macs", include_zero=False)
            if mode == "weights" and not method.startswith("rd"):
                raise ValueError(f"--keep-macs: only the rd methods allocate under a MACs budget; {method} takes "
                                 f"--sparsity")
        checks.writable_file(save_curves, "--save-curves")
        if save_curves is not None and (mode != "weights" or not method.startswith("rd")):
            raise ValueError("--save-curves: only the rd methods measure distortion curves (--mode weights)")
        checks.integer(calibration, "--calibration", minimum=1)
        checks.integer(grid, "--grid", minimum=2)
        checks.integer(finetune_epochs, "--finetune-epochs", minimum=0)
        resolve_device(device)
        subject = _load_subject(checkpoint, model_ref, weights, input_shape, dataset, device)
        splits = load_dataset(subject.dataset, seed=subject.metadata.get("seed", 0))
        subject.check_fits(splits)
        if subject.user:  # one float tensor in, logits out: before calibration or training
            from designer.user_model import check_forward
            check_forward(subject.model, tuple(subject.example_input.shape), logits=True)
        on = next(subject.model.parameters()).device
        calib = splits.train.tensors[0][:calibration].to(on)
        finetune = None
        if finetune_epochs:
            config = TrainConfig(epochs=finetune_epochs, lr=0.01, warmup_epochs=0,
                                 seed=subject.metadata.get("seed", 0), device=on.type)
            finetune = lambda m: train_loop(m, splits.train, config)  # noqa: E731
        before = evaluate(subject.model, splits.test)
        if mode == "channels":
            summary = _prune_channels(subject, calib, splits, sparsity, keep_macs, finetune, before, out)
        else:
            summary = _prune_weights(subject, calib, splits, method, sparsity, keep_macs, schedule, finetune,
                                     grid, criterion, before, out, progress=not as_json, save_curves=save_curves)
    except ValueError as error:
        fail(str(error))
    line = summary.pop("line")  # the sentence is for people; --json carries the figures only
    from designer.schemas import FORMAT_VERSION
    summary = {"format_version": FORMAT_VERSION, **summary}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(line)


class _Subject:
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


def _load_subject(checkpoint, model_ref, weights, input_shape, dataset, device) -> _Subject:
    import torch

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
        return _Subject(model, metadata, name, example_input(model.spec, 1), user=False)
    from designer.pruning.curves import prunable_layers
    from designer.user_model import build_user_model, parse_input_shape
    if input_shape is None:
        raise ValueError("--input-shape: needed with --model, e.g. 1,3,32,32")
    shape = parse_input_shape(input_shape)
    if dataset is None:
        raise ValueError("--dataset: needed with --model (digits, mnist5k, shapes, an .npz or an image folder)")
    target = resolve_device(device)
    model = build_user_model(model_ref, weights).to(target).eval()
    if not list(prunable_layers(model)):
        raise ValueError(f"--model: {model_ref} has no Conv or Linear layer to prune")
    return _Subject(model, {"model": model_ref, "weights": None if weights is None else str(weights)}, dataset,
                    torch.zeros(shape, device=target), user=True)


def _prune_weights(subject, calib, splits, method, sparsity, keep_macs, schedule, finetune, grid, criterion, before,
                   out, progress, save_curves=None) -> dict:
    import torch

    from designer.checkpoint import save_checkpoint
    from designer.pruning.curves import default_grid
    from designer.pruning.prune import prune_model
    from designer.train.loop import evaluate
    report = prune_model(subject.model, calib, method=method, sparsity=sparsity, keep_macs=keep_macs,
                         schedule=schedule, finetune=finetune, grid=default_grid(grid), progress=progress,
                         criterion=criterion)
    after = evaluate(subject.model, splits.test)
    if save_curves is not None:
        report.first_curves.save(save_curves)
    last = report.rounds[-1]
    metadata = {"method": method, "criterion": criterion, "schedule": schedule, "budget": last["budget"],
                "budget_unit": last["budget_unit"], "kept_weights": last["kept_weights"],
                "sparsity": last["sparsity"], "layer_sparsity": report.sparsity, "dataset": subject.dataset,
                "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"]}
    if subject.user:  # masks are permanent: a plain state dict any PyTorch user loads
        state = {k: v.detach().cpu() for k, v in subject.model.state_dict().items()}
        with files.atomic_path(out) as temporary:
            torch.save({"state_dict": state, "metadata": {**subject.metadata, **metadata}}, temporary)
    else:
        save_checkpoint(subject.model, out, **{**subject.metadata, "pruning": report.to_dict(),
                                               "test_accuracy": after["accuracy"]})
    return {**metadata, "kept_macs": last["kept_macs"], "rounds": report.rounds, "output": str(out),
            "line": f"{method}: sparsity {last['sparsity']:.4f} ({last['kept_weights']:,} weights kept, budget "
                    f"{last['budget']:,} {last['budget_unit']}), accuracy {before['accuracy']:.4f} -> "
                    f"{after['accuracy']:.4f}; written to {out}"}


def _prune_channels(subject, calib, splits, sparsity, keep_macs, finetune, before, out) -> dict:
    from designer.pruning.channels import latency
    from designer.train.loop import evaluate
    batch = calib[:32]
    if subject.user:
        import torch

        from designer.pruning.groups import count_costs, prune_channels_any
        params0, macs0 = count_costs(subject.model, subject.example_input)
        result = prune_channels_any(subject.model, subject.example_input, calib,
                                    max_params=None if sparsity is None else (1 - sparsity) * params0,
                                    max_macs=None if keep_macs is None else keep_macs * macs0)
        small, params, macs, widths = result.model, result.params, result.macs, result.kept
    else:
        from designer.checkpoint import save_checkpoint
        from designer.costs import count
        from designer.pruning.channels import prune_channels
        full = count(subject.model.spec)
        params0, macs0 = full.params, full.macs
        result = prune_channels(subject.model, calib,
                                max_params=None if sparsity is None else (1 - sparsity) * full.params,
                                max_macs=None if keep_macs is None else keep_macs * full.macs)
        small, params, macs = result.model, result.params, result.macs
        widths = {f"stages[{i}].btn": w for i, w in result.widths.items()}
    if finetune is not None:
        finetune(small)
    after = evaluate(small, splits.test)
    dense_latency, small_latency = latency(subject.model, batch), latency(small, batch)
    if subject.user and out.suffix == ".pt2":
        # an ExportedProgram: loads with plain torch.export.load in any process, without the
        # user's source file (but its .module() cannot .train() or .eval() in torch 2.13)
        exported = torch.export.export(small.eval(), (subject.example_input,))
        with files.atomic_path(out) as temporary:
            torch.export.save(exported, temporary)
    elif subject.user:  # the user's own class, smaller: designer.pruning.load_pruned(FACTORY, out)
        from designer.pruning.pruned_file import save_pruned
        save_pruned(small, out, {**subject.metadata, "test_accuracy": after["accuracy"]})
    else:
        save_checkpoint(small, out, **{**subject.metadata, "test_accuracy": after["accuracy"]})
    return {"mode": "channels", "kept_channels": widths, "params": params, "params_dense": params0, "macs": macs,
            "macs_dense": macs0, "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
            "latency_dense_s": dense_latency, "latency_pruned_s": small_latency, "output": str(out),
            "line": f"channels: params {params0:,} -> {params:,}, MACs {macs0:,} -> {macs:,}, latency "
                    f"{1e3 * dense_latency:.2f} -> {1e3 * small_latency:.2f} ms (batch {len(batch)}), accuracy "
                    f"{before['accuracy']:.4f} -> {after['accuracy']:.4f}; written to {out}"}


@app.command()
def allocate(
    curves: Path = typer.Argument(..., help="Distortion curves JSON."),
    keep_weights: Optional[float] = typer.Option(None, help="Kept weights budget (count)."),
    keep_macs: Optional[float] = typer.Option(None, help="Kept MACs budget (count)."),
    method: str = choice_option("dp", ALLOCATIONS, "dp (binned knapsack DP) or slope (Lagrangian)."),
    bins: int = typer.Option(20000, help="Budget bins of the DP (0: exact integer state)."),
    as_json: bool = typer.Option(True, "--json/--table"),
) -> None:
    """Per-layer sparsities minimising the summed distortion under a budget."""
    from designer.pruning.allocate import allocate as allocate_curves
    from designer.pruning.curves import Curves
    try:
        checks.integer(bins, "--bins", minimum=0)
        result = allocate_curves(Curves.load(curves), keep_weights=keep_weights, keep_macs=keep_macs, method=method,
                                 bins=bins or None)
    except ValueError as error:
        fail(str(error))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for name, value in result.sparsity.items():
            console.print(f"{name}: {value:.4f}")
        console.print(f"distortion {result.distortion:.6g}, kept weights {result.kept_weights:,.0f}, "
                      f"kept MACs {result.kept_macs:,.0f}")
