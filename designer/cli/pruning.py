"""`mpdesign prune` and `allocate`: layer-adaptive pruning by rate-distortion allocation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from designer import checks
from designer.cli.common import (DEVICES, checkpoint_argument, choice_option, console, fail, force_option,
                                  input_shape_option, model_option, quiet_option, shown, weights_option)

# the names the library accepts, listed here so that `--help` needs no torch import
# (tests/test_packaging.py checks them against designer.pruning)
PRUNE_METHODS = ("rd", "rd-slope", "global", "lamp", "uniform", "uniform+", "erk")
PRUNE_MODES = ("weights", "channels")
SCHEDULES = ("iterative", "one-shot")
ALLOCATIONS = ("dp", "slope")
CRITERION_NAMES = ("magnitude", "obs")

app = typer.Typer()


@app.command()
def prune(
    checkpoint: Optional[Path] = checkpoint_argument(),
    model_ref: Optional[str] = model_option(),
    weights: Optional[Path] = weights_option(),
    input_shape: Optional[str] = input_shape_option(),
    sparsity: Optional[float] = typer.Option(None, help="Fraction of prunable weights to remove (channels: of "
                                                        "parameters)."),
    keep_macs: Optional[float] = typer.Option(None, help="Fraction of MACs to keep (rd; channels)."),
    nm: Optional[str] = typer.Option(None, help="N:M semi-structured sparsity instead of a budget, e.g. 2:4: in "
                                                "every 4 consecutive input channels 2 stay (every layer that fits; "
                                                "--criterion obs re-fits the survivors)."),
    method: str = choice_option("rd", PRUNE_METHODS, "rd, rd-slope, or an allocation baseline."),
    criterion: str = choice_option("magnitude", CRITERION_NAMES, "Within-layer criterion: magnitude (the largest "
                                   "weights stay, as they were) or obs (Optimal Brain Surgeon: weights by their "
                                   "saliency w^2/[H^-1]_ii, the survivors re-fitted to each layer's calibration "
                                   "outputs, curves included; with --mode channels and --model, the layers reading "
                                   "cut channels re-fitted by least squares)."),
    mode: str = choice_option("weights", PRUNE_MODES, "weights (masks) or channels (a physically smaller network)."),
    schedule: str = choice_option("one-shot", SCHEDULES, "one-shot, or iterative (20% of what is left per round, "
                                  "curves and fine-tuning again each round: more accurate at high sparsity, about "
                                  "ten rounds to 90%)."),
    dataset: Optional[str] = typer.Option(None, help="Dataset for calibration and fine-tuning: digits, mnist5k, "
                                                     "shapes, textures, an .npz or an image folder (default: the checkpoint's)."),
    calibration: int = typer.Option(64, help="Calibration images (the first of the training split)."),
    grid: int = typer.Option(101, help="Sparsity grid points per layer."),
    curve_points: Optional[int] = typer.Option(None, help="rd: measure this many grid points per layer (default 13; "
                                                          "--grid's count: all) and interpolate the rest "
                                                          "(monotone); curves cost about points x calibration "
                                                          "images (benchmarks/curves.py)."),
    correction_rounds: int = typer.Option(0, help="rd: rounds of the correction loop (measure the allocation's "
                                                   "joint distortion, rescale the curves it contradicts, "
                                                   "re-allocate, keep the best measured); 0: the plain DP."),
    finetune_epochs: int = typer.Option(1, help="Fine-tuning epochs after each round (0: none)."),
    device: str = choice_option("auto", DEVICES, "auto (CUDA when there is one), cpu or cuda[:N]: curves, BN "
                                                 "re-estimation and fine-tuning run there."),
    out: Optional[Path] = typer.Option(None, help="Output (default: next to the checkpoint or --weights, "
                                                  "NAME-pruned.pt or NAME-channels.pt): a checkpoint (mpdesign "
                                                  "networks); for --model, a state_dict + metadata file (weights), "
                                                  "or (channels) your module smaller: load_pruned(FACTORY, OUT), or "
                                                  "an ExportedProgram when OUT ends in .pt2."),
    save_curves: Optional[Path] = typer.Option(None, help="rd: also write the first round's distortion curves "
                                                          "here (what `allocate` reads)."),
    scheduler: str = typer.Option("serial", help="rd: where the layers' curves are measured: serial (here), local "
                                                 "(a local Dask cluster) or a Dask scheduler's address "
                                                 "(tcp://host:8786; workers need mpdesign installed, and the "
                                                 "cluster must be one you trust: results come back unpickled)."),
    as_json: bool = typer.Option(False, "--json"),
    threads: int = typer.Option(0, help="torch's threads (0: auto, the cores other processes leave free; "
                                        "OMP_NUM_THREADS, when set, wins)."),
    force: bool = force_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Prune a trained network - an mpdesign checkpoint or your own module - with rate-distortion
    allocation or a baseline; weights (masks) or channels (a smaller module)."""
    from designer.pruning.run import PruneRequest, run_prune
    request = PruneRequest(checkpoint=checkpoint, model=model_ref, weights=weights, input_shape=input_shape,
                           sparsity=sparsity, keep_macs=keep_macs, nm=nm, method=method, criterion=criterion, mode=mode,
                           schedule=schedule, dataset=dataset, calibration=calibration, grid=grid,
                           curve_points=curve_points, correction_rounds=correction_rounds,
                           finetune_epochs=finetune_epochs, device=device, out=out,
                           save_curves=save_curves, scheduler=scheduler, force=force, progress=not (as_json or quiet))
    try:  # every argument is checked before any curve is measured
        summary = run_prune(request)
    except ValueError as error:
        fail(str(error))
    line = summary.pop("line")  # the sentence is for people; --json carries the figures only
    from designer.schemas import FORMAT_VERSION
    summary = {"format_version": FORMAT_VERSION, **summary}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(line)


@app.command()
def allocate(
    curves: Path = typer.Argument(..., help="Distortion curves JSON."),
    sparsity: Optional[float] = typer.Option(None, help="Fraction of the curves' weights to remove (as prune "
                                                        "takes it)."),
    keep_macs: Optional[float] = typer.Option(None, help="Fraction of the curves' MACs to keep (as prune takes it)."),
    keep_weights: Optional[float] = typer.Option(None, hidden=True),  # a count once: refused, naming --sparsity
    method: str = choice_option("dp", ALLOCATIONS, "dp (binned knapsack DP) or slope (Lagrangian)."),
    bins: int = typer.Option(20000, help="Budget bins of the DP (0: exact integer state)."),
    as_json: bool = typer.Option(True, "--json/--table"),
) -> None:
    """Per-layer sparsities minimising the summed distortion under a budget, given as prune takes it."""
    from designer.pruning.allocate import allocate as allocate_curves
    from designer.pruning.curves import Curves
    try:  # the options checked here, by the names typed; the library checks its own fields for API callers
        if keep_weights is not None:
            raise ValueError("--keep-weights: replaced by --sparsity, the fraction of weights removed, as prune "
                             "takes it (the library's allocate(keep_weights=) still takes a count)")
        if (sparsity is None) == (keep_macs is None):
            raise ValueError("give exactly one of --sparsity (fraction of weights removed) and --keep-macs "
                             "(fraction of MACs kept)")
        if sparsity is not None:
            checks.fraction(sparsity, "--sparsity", include_one=False)
        if keep_macs is not None:
            checks.fraction(keep_macs, "--keep-macs", include_zero=False)
        checks.choice(method, "--method", ALLOCATIONS)
        checks.integer(bins, "--bins", minimum=0)
        loaded = Curves.load(curves)
        if sparsity is not None:  # the fractions as counts of the curves' own totals
            budget = {"keep_weights": (1 - sparsity) * sum(layer.weights for layer in loaded.layers)}
        else:
            budget = {"keep_macs": keep_macs * sum(layer.macs for layer in loaded.layers)}
        result = allocate_curves(loaded, method=method, bins=bins or None, **budget)
    except ValueError as error:
        fail(str(error))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for name, value in result.sparsity.items():
            console.print(f"{shown(name)}: {value:.4f}")
        console.print(f"distortion {result.distortion:.6g}, kept weights {result.kept_weights:,.0f}, "
                      f"kept MACs {result.kept_macs:,.0f}")
