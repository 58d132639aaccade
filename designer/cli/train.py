"""`mpdesign train` and `pipeline`: training what we design, and the whole chain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from designer import checks, files
from designer.cli.common import (DEVICES, choice_option, console, errors, fail, force_option, load_spec,
                                 quiet_option)

OPTIMISER_NAMES = ("sgd", "adamw")  # designer.train.loop.OPTIMISERS (checked in tests/test_packaging.py)
SWITCHES = ("auto", "on", "off")
from designer.spec import NetworkSpec, SpecError

app = typer.Typer()


@app.command()
def train(
    spec: str = typer.Argument(..., help="Spec JSON, TinyNAS file or built-in name."),
    dataset: str = typer.Option("digits", help="digits, mnist5k, shapes, an .npz file or an image folder "
                                               "(one sub-folder per class)."),
    epochs: int = typer.Option(10, help="Training epochs."),
    optimizer: str = choice_option("sgd", OPTIMISER_NAMES, "sgd (Nesterov momentum) or adamw."),
    lr: float = typer.Option(0.05, help="Peak learning rate (cosine schedule after a warm-up epoch)."),
    weight_decay: float = typer.Option(5e-4),
    batch_size: int = typer.Option(64, help="Global batch (split over the processes under torchrun)."),
    resolution: Optional[int] = typer.Option(None, help="Image-folder datasets: resize images to this size "
                                                        "(default: the first image's)."),
    device: str = choice_option("auto", DEVICES, "auto (CUDA when there is one), cpu or cuda[:N]."),
    amp: str = choice_option("auto", SWITCHES, "Mixed precision: auto (on CUDA), on or off."),
    channels_last: str = choice_option("auto", SWITCHES, "Channels-last memory: auto (on CUDA), on or off."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model (pays off on long GPU runs)."),
    resident: str = choice_option("auto", SWITCHES, "Keep the training split on the device: auto (when it fits), on, "
                                                    "off."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("run"), help="Folder for checkpoint.pt and metrics.json."),
    threads: int = typer.Option(0, help="torch's threads (0: auto, the cores other processes leave free; "
                                        "OMP_NUM_THREADS, when set, wins)."),
    force: bool = force_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Train a spec on an offline dataset; writes a checkpoint `prune` and `map` accept.

    Under `torchrun --nproc_per_node N -m designer.cli train ...` the same flags train with DDP.
    """
    import torch

    from designer.checkpoint import save_checkpoint
    from designer.network import build
    from designer.train import distributed
    from designer.train.data import load_dataset
    from designer.train.loop import TrainConfig, TrainingDiverged, evaluate, train as train_loop
    try:
        checks.writable_folder(out, "--out")
        if resolution is not None:
            checks.integer(resolution, "--resolution", minimum=1)
        checks.integer(epochs, "--epochs", minimum=1)
        checks.positive(lr, "--lr")
        checks.number(weight_decay, "--weight-decay", minimum=0)
        checks.integer(batch_size, "--batch-size", minimum=1)
        checks.integer(seed, "--seed", minimum=0, maximum=2**32 - 1)
        from designer.checkpoint import resolve_device
        resolve_device(device, "--device")
        config = TrainConfig(epochs=epochs, optimizer=optimizer, lr=lr, weight_decay=weight_decay,
                             batch_size=batch_size, seed=seed, device=device, amp=amp, channels_last=channels_last,
                             compile=compile, resident=resident, progress=not quiet)
        network = load_spec(spec)
        splits = load_dataset(dataset, seed=seed, resolution=resolution)
    except (SpecError, ValueError) as error:
        fail(str(error))
    distributed.init_from_environment(device)
    main_process = distributed.is_main_process()
    adapted = fit_to_dataset(network, splits)
    if adapted != network and main_process:
        errors.print(f"note: spec adapted to {splits.name}: resolution {adapted.resolution}, "
                                   f"{adapted.in_channels} input channels, {adapted.num_classes} classes")
    torch.manual_seed(seed)
    model = build(adapted)
    try:
        history = train_loop(model, splits.train, config, val_set=splits.val)
    except TrainingDiverged as error:
        fail(f"{error}; no checkpoint written", code=1)
    spread = distributed.parameter_spread(model)  # a collective: every rank takes part
    if main_process:
        test = evaluate(model, splits.test)
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(model.cpu(), out / "checkpoint.pt", dataset=dataset, seed=seed,
                        test_accuracy=test["accuracy"])
        metrics = {"history": history, "test": test, "world_size": distributed.world_size(),
                   "rank_parameter_spread": spread, "config": {**config.__dict__, "progress": None}}
        files.write_text(out / "metrics.json", json.dumps(metrics, indent=2))
        console.print(f"test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}); "
                      f"checkpoint {out / 'checkpoint.pt'}")
    was_distributed = distributed.finish()
    if spread > 0:
        fail(f"ranks ended with different parameters (largest difference {spread:.3g})")
    if was_distributed:
        distributed.exit_now(0)


def fit_to_dataset(spec: NetworkSpec, splits) -> NetworkSpec:
    """The spec with the dataset's resolution, input channels and classes."""
    return spec.replace(resolution=splits.resolution, in_channels=splits.in_channels, num_classes=splits.num_classes)


@app.command()
def pipeline(
    dataset: str = typer.Option("digits", help="digits, mnist5k, shapes, or an .npz file."),
    macs: float = typer.Option(2.5e6, help="MACs budget of the design."),
    params: float = typer.Option(1.2e5, help="Parameter budget of the design."),
    sparsity: float = typer.Option(0.7, help="Pruning target (fraction of prunable weights removed)."),
    scratchpad: str = typer.Option("auto", help="Scratchpad bytes, M_R, M_H, M_P, or auto: the smallest footprint "
                                                "a tiling reaches with at most half the MACs recomputed."),
    epochs: int = typer.Option(15, help="Training epochs."),
    seed: int = typer.Option(0),
    device: str = choice_option("auto", DEVICES, "auto (CUDA when there is one), cpu or cuda[:N]: training, "
                                                 "pruning curves and fine-tuning run there."),
    out: Path = typer.Option(Path("runs/pipeline"), help="Run folder (report.md, plots, checkpoints)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars (the step lines stay)."),
    threads: int = typer.Option(0, help="torch's threads (0: auto, the cores other processes leave free; "
                                        "OMP_NUM_THREADS, when set, wins)."),
) -> None:
    """Design under a budget -> train -> prune (RD) -> fine-tune -> map onto a scratchpad."""
    from designer.pipeline import PipelineConfig, PipelineError, run_pipeline
    try:
        labels = {name: f"--{name}" for name in ("dataset", "macs", "params", "sparsity", "scratchpad", "epochs", "seed",
                                                 "device", "out")}
        config = PipelineConfig(dataset=dataset, macs=macs, params=params, sparsity=sparsity, scratchpad=scratchpad,
                                epochs=epochs, seed=seed, device=device, progress=not quiet, labels=labels)
        run_pipeline(config, out, log=console.print)
    except PipelineError as error:
        fail(str(error), code=1)
    except (SpecError, ValueError) as error:  # DesignError is a ValueError
        fail(str(error))
