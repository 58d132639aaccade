"""`mpdesign prune` and `allocate`: layer-adaptive pruning by rate-distortion allocation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from designer import checks
from designer.cli.common import check_dataset_fits, console, fail

app = typer.Typer()


@app.command()
def prune(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `mpdesign train`."),
    sparsity: Optional[float] = typer.Option(None, help="Fraction of prunable weights to remove."),
    keep_macs: Optional[float] = typer.Option(None, help="Fraction of prunable layers' MACs to keep (rd)."),
    method: str = typer.Option("rd", help="rd, rd-slope, or an allocation baseline: lamp, global, uniform, "
                                          "uniform+, erk."),
    criterion: str = typer.Option("magnitude", help="Within-layer criterion: which weights a layer keeps."),
    mode: str = typer.Option("weights", help="weights (masks) or channels (a smaller network)."),
    schedule: str = typer.Option("iterative", help="iterative (20% of what is left per round) or one-shot."),
    dataset: Optional[str] = typer.Option(None, help="Dataset for calibration and fine-tuning (default: the "
                                                     "checkpoint's)."),
    calibration: int = typer.Option(256, help="Calibration images (the first of the training split)."),
    grid: int = typer.Option(101, help="Sparsity grid points per layer."),
    finetune_epochs: int = typer.Option(1, help="Fine-tuning epochs after each round (0: none)."),
    device: str = typer.Option("auto", help="auto (CUDA when there is one), cpu or cuda: curves, BN re-estimation "
                                            "and fine-tuning run there."),
    out: Path = typer.Option(Path("pruned.pt"), help="Pruned checkpoint."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Prune a trained checkpoint with rate-distortion allocation or a baseline."""
    from designer.checkpoint import load_checkpoint, resolve_device, save_checkpoint
    from designer.pruning.curves import default_grid
    from designer.pruning.prune import prune_model
    from designer.train.data import load_dataset
    from designer.train.loop import TrainConfig, evaluate, train as train_loop
    from designer.pruning.allocate import METHODS
    from designer.pruning.curves import CRITERIA
    try:  # every argument before any curve is measured
        checks.writable_file(out, "--out")
        checks.choice(mode, "--mode", ("weights", "channels"))
        checks.choice(method, "--method", METHODS)
        checks.choice(schedule, "--schedule", ("iterative", "one-shot"))
        checks.choice(criterion, "--criterion", tuple(CRITERIA))
        if (sparsity is None) == (keep_macs is None):
            raise ValueError("give exactly one of --sparsity (fraction of weights removed) and --keep-macs")
        if sparsity is not None:
            checks.fraction(sparsity, "--sparsity", include_one=False)
        if keep_macs is not None:
            checks.fraction(keep_macs, "--keep-macs", include_zero=False)
            if mode == "weights" and not method.startswith("rd"):
                raise ValueError(f"--keep-macs: only the rd methods allocate under a MACs budget; {method} takes "
                                 f"--sparsity")
        checks.integer(calibration, "--calibration", minimum=1)
        checks.integer(grid, "--grid", minimum=2)
        checks.integer(finetune_epochs, "--finetune-epochs", minimum=0)
        resolve_device(device)
        model, metadata = load_checkpoint(checkpoint, device)
        name = dataset or metadata.get("dataset")
        if name is None:
            raise ValueError("--dataset: the checkpoint names no dataset; give one")
        splits = load_dataset(name, seed=metadata.get("seed", 0))
        check_dataset_fits(model.spec, splits, "--dataset")
        calib = splits.train.tensors[0][:calibration].to(next(model.parameters()).device)
        finetune = None
        if finetune_epochs:
            config = TrainConfig(epochs=finetune_epochs, lr=0.01, warmup_epochs=0, seed=metadata.get("seed", 0),
                                 device=str(next(model.parameters()).device.type))
            finetune = lambda m: train_loop(m, splits.train, config)  # noqa: E731
        before = evaluate(model, splits.test)
        if mode == "channels":
            _prune_channels(model, calib, splits, sparsity, keep_macs, finetune, before, out, metadata, as_json)
            return
        report = prune_model(model, calib, method=method, sparsity=sparsity, keep_macs=keep_macs, schedule=schedule,
                             finetune=finetune, grid=default_grid(grid), progress=not as_json, criterion=criterion)
    except ValueError as error:
        fail(str(error))
    after = evaluate(model, splits.test)
    save_checkpoint(model, out, **{**metadata, "pruning": report.to_dict(), "test_accuracy": after["accuracy"]})
    summary = {"method": method, "sparsity": report.rounds[-1]["sparsity"], "kept_macs": report.rounds[-1]["kept_macs"],
               "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"], "rounds": report.rounds,
               "layer_sparsity": report.sparsity, "checkpoint": str(out)}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(f"{method}: sparsity {summary['sparsity']:.4f}, kept MACs {summary['kept_macs']:.4f}, "
                      f"accuracy {before['accuracy']:.4f} -> {after['accuracy']:.4f}; written to {out}")


def _prune_channels(model, calib, splits, sparsity, keep_macs, finetune, before, out, metadata, as_json) -> None:
    from designer.checkpoint import save_checkpoint
    from designer.costs import count
    from designer.pruning.channels import latency, prune_channels
    from designer.train.loop import evaluate
    full = count(model.spec)
    if (sparsity is None) == (keep_macs is None):
        raise ValueError("give exactly one of --sparsity (fraction of parameters removed) and --keep-macs")
    result = prune_channels(model, calib, max_params=None if sparsity is None else (1 - sparsity) * full.params,
                            max_macs=None if keep_macs is None else keep_macs * full.macs)
    if finetune is not None:
        finetune(result.model)
    after = evaluate(result.model, splits.test)
    batch = calib[:32]
    dense_latency, small_latency = latency(model, batch), latency(result.model, batch)
    save_checkpoint(result.model, out, **{**metadata, "test_accuracy": after["accuracy"]})
    summary = {"mode": "channels", "widths": {f"stages[{i}].btn": w for i, w in result.widths.items()},
               "params": result.params, "params_dense": full.params, "macs": result.macs, "macs_dense": full.macs,
               "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
               "latency_dense_s": dense_latency, "latency_pruned_s": small_latency, "checkpoint": str(out)}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(f"channels: params {full.params:,} -> {result.params:,}, MACs {full.macs:,} -> {result.macs:,}, "
                      f"latency {1e3 * dense_latency:.2f} -> {1e3 * small_latency:.2f} ms (batch 32), accuracy "
                      f"{before['accuracy']:.4f} -> {after['accuracy']:.4f}; written to {out}")


@app.command()
def allocate(
    curves: Path = typer.Argument(..., help="Distortion curves JSON."),
    keep_weights: Optional[float] = typer.Option(None, help="Kept weights budget (count)."),
    keep_macs: Optional[float] = typer.Option(None, help="Kept MACs budget (count)."),
    method: str = typer.Option("dp", help="dp (binned knapsack DP) or slope (Lagrangian)."),
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
