"""The ``mpdesign`` command line: parse, call the API, print. No logic lives here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
import typer
from rich.console import Console
from rich.table import Table

from designer import zoo
from designer.design.problem import FAMILY_DEFAULTS, DesignError, DesignProblem
from designer.design.solve import solve as solve_design
from designer.report import inspect_spec
from designer.spec import NetworkSpec, SpecError

app = typer.Typer(help="Design neural networks and their deployment with mathematical programming.",
                  no_args_is_help=True, add_completion=False)
console = Console()


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


def load_spec(source: str, resolution: Optional[int] = None, num_classes: Optional[int] = None) -> NetworkSpec:
    """A spec from a file (spec JSON or TinyNAS structure) or a built-in name."""
    if Path(source).exists():
        return NetworkSpec.load(source, resolution=resolution, num_classes=num_classes)
    if source in zoo.names():
        return zoo.load(source).replace(resolution=resolution, num_classes=num_classes)
    raise SpecError(f"{source}: no such file, nor a built-in spec ({', '.join(zoo.names())})")


def _parse_list(text: Optional[str], option: str, kind: type = float) -> Optional[list]:
    if text is None:
        return None
    try:
        return [kind(x) for x in text.split(",")]
    except ValueError:
        raise SpecError(f"{option}: expected comma-separated {kind.__name__}s, got {text!r}") from None


def _percent(fraction: Optional[float]) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.2f}%"


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:g}"


@app.command()
def inspect(
    spec: str = typer.Argument(..., help="Spec JSON, TinyNAS structure file, or built-in name (see `mpdesign specs`)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    resolution: Optional[int] = typer.Option(None, help="Input resolution (TinyNAS files carry none; default 224)."),
    classes: Optional[int] = typer.Option(None, help="Number of classes (TinyNAS files: default 1000)."),
    alpha: Optional[str] = typer.Option(None, help="DeepMAD stage weights, comma-separated (default 1,1,1,1,8)."),
    bytes_per_element: int = typer.Option(1, help="Bytes per activation element for memory figures."),
) -> None:
    """Costs (params, MACs, activation memory) and DeepMAD scores of a network spec."""
    try:
        network = load_spec(spec, resolution, classes)
        report = inspect_spec(network, _parse_list(alpha, "--alpha"), bytes_per_element)
    except (SpecError, ValueError) as err:
        _fail(str(err))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"{report['name'] or spec} at {report['resolution']}x{report['resolution']}")
    for column in ("stage", "family", "out", "btn", "k", "L", "stride", "params", "MACs", "max act. bytes"):
        table.add_column(column, justify="right")
    for i, row in enumerate(report["stages"]):
        table.add_row(str(i), row["family"], str(row["out"]), str(row["btn"]), str(row["k"]), str(row["L"]),
                      str(row["stride"]), _si(row["params"]), _si(row["macs"]), _si(row["max_activation_bytes"]))
    console.print(table)
    scoring = Table(title="DeepMAD scoring stages")
    for column in ("stage", "channels c_i", "resolution r_i", "entropy H_i", "alpha_i", "rho_i"):
        scoring.add_column(column, justify="right")
    for i, row in enumerate(report["scoring_stages"]):
        scoring.add_row(str(i), str(row["channels"]), str(row["resolution"]), f"{row['entropy']:.2f}",
                        f"{row['alpha']:g}", f"{row['rho']:.4f}")
    console.print(scoring)
    console.print(
        f"params {report['params']:,} (conv weights {report['conv_weights']:,}, BN {report['batchnorm_params']:,}, "
        f"classifier {report['classifier_params']:,})\n"
        f"MACs {report['macs']:,} (convs and linears; + {report['elementwise_ops']:,} elementwise ops)\n"
        f"layers {report['layers']}   effectiveness {report['effectiveness']:.4f}   "
        f"DeepMAD score {report['deepmad_score']:.2f}   depth penalty {report['depth_penalty']:.2f}\n"
        f"largest single-layer activation footprint {report['max_activation_bytes']:,} bytes "
        f"at {report['bytes_per_element']} byte(s)/element")


@app.command()
def design(
    family: str = typer.Option("bottleneck", help="Block family: bottleneck, inverted or basic."),
    resolution: int = typer.Option(224, help="Input resolution."),
    classes: int = typer.Option(1000, help="Number of classes."),
    macs: Optional[float] = typer.Option(None, help="MACs budget (convs and linears)."),
    params: Optional[float] = typer.Option(None, help="Parameter budget."),
    effectiveness: Optional[float] = typer.Option(None, help="Effectiveness budget rho0 (default 0.3 / 0.5 inverted)."),
    layers: Optional[int] = typer.Option(None, help="Budget on DeepMAD's layer count."),
    strides: Optional[str] = typer.Option(None, help="The stem's stride then one per stage, e.g. 2,2,2,2,1,2."),
    head: Optional[int] = typer.Option(None, help="Channels of a fixed 1x1 head conv."),
    no_monotone: bool = typer.Option(False, "--no-monotone", help="Allow stage widths to decrease."),
    max_activation_bytes: Optional[float] = typer.Option(None, help="Largest single-layer inputs + output footprint."),
    bytes_per_element: int = typer.Option(1, help="Bytes per activation element for the footprint budget."),
    max_depth_spread: Optional[int] = typer.Option(None, help="Largest difference between stage depths."),
    alpha: Optional[str] = typer.Option(None, help="Stage weights, comma-separated (default 1,1,1,1,8)."),
    time_limit: float = typer.Option(60.0, help="Seconds."),
    gap: float = typer.Option(0.01, help="Stop once the relative gap is at most this."),
    method: str = typer.Option("auto", help="auto, exact (one MILP over the grid) or refine."),
    threads: int = typer.Option(1, help="HiGHS threads."),
    out: Optional[Path] = typer.Option(None, help="Write the designed spec here (spec JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Design a network that maximises the DeepMAD score under budgets, with a proven bound."""
    err = Console(stderr=True)
    try:
        problem = DesignProblem(
            family=family, resolution=resolution, num_classes=classes, strides=_parse_list(strides, "--strides", int),
            head=head, monotone=not no_monotone, max_macs=macs, max_params=params, max_layers=layers,
            effectiveness=effectiveness if effectiveness is not None else FAMILY_DEFAULTS.get(family, {}).get(
                "effectiveness"),
            max_activation_bytes=max_activation_bytes, bytes_per_element=bytes_per_element,
            max_depth_spread=max_depth_spread, alpha=_parse_list(alpha, "--alpha"))

        def report(step: dict) -> None:
            score = "none yet" if step["score"] is None else f"{step['score']:.2f}"
            gap_text = _percent(step["gap"])
            err.print(f"[dim]iteration {step['iteration']}: best {score}, bound {step['bound']:.2f}, "
                      f"gap {gap_text}, {step['seconds']:.1f} s[/]")

        result = solve_design(problem, time_limit=time_limit, rel_gap=gap, threads=threads, method=method,
                              progress=report)
    except (DesignError, SpecError, ValueError) as error:
        _fail(str(error))
    if result.spec is not None and out is not None:
        result.spec.save(out)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    if result.spec is None:
        _fail(f"no design found: {result.solve.message} ({result.status} after {result.solve.seconds:.1f} s)")
    table = Table(title=f"{family} design at {resolution}x{resolution}")
    for column in ("stage", "out", "btn", "k", "L", "stride"):
        table.add_column(column, justify="right")
    table.add_row("stem", str(result.spec.stem.out), "", str(result.spec.stem.k), "1", str(result.spec.stem.stride))
    for i, stage in enumerate(result.spec.stages, start=1):
        table.add_row(str(i), str(stage.out), str(stage.btn), str(stage.k), str(stage.L), str(stage.stride))
    console.print(table)
    bound = "none" if result.solve.bound is None else f"{result.solve.bound:.2f}"
    gap_text = _percent(result.solve.gap)
    console.print(
        f"status {result.status}   score {result.score:.2f}   bound {bound}   gap {gap_text}   "
        f"{result.solve.seconds:.1f} s ({result.solve.solver})\n"
        f"MACs {result.macs:,}   params {result.params:,}   effectiveness {result.effectiveness:.4f}   "
        f"layers {result.layers}   depth penalty {result.depth_penalty:.2f}   "
        f"max activation {result.max_activation_bytes:,} B")
    if out is not None:
        console.print(f"spec written to {out}")


@app.command()
def train(
    spec: str = typer.Argument(..., help="Spec JSON, TinyNAS file or built-in name."),
    dataset: str = typer.Option("digits", help="digits, mnist5k, shapes, or an .npz file."),
    epochs: int = typer.Option(10, help="Training epochs."),
    lr: float = typer.Option(0.05, help="Peak learning rate (SGD, cosine schedule)."),
    batch_size: int = typer.Option(64),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("run"), help="Folder for checkpoint.pt and metrics.json."),
) -> None:
    """Train a spec on an offline dataset; writes a checkpoint `prune` and `map` accept."""
    from designer.checkpoint import save_checkpoint
    from designer.network import build
    from designer.train.data import load_dataset
    from designer.train.loop import TrainConfig, evaluate, train as train_loop
    try:
        network = load_spec(spec)
        splits = load_dataset(dataset, seed=seed)
    except (SpecError, ValueError) as error:
        _fail(str(error))
    adapted = fit_to_dataset(network, splits)
    if adapted != network:
        Console(stderr=True).print(f"note: spec adapted to {splits.name}: resolution {adapted.resolution}, "
                                   f"{adapted.in_channels} input channels, {adapted.num_classes} classes")
    torch.manual_seed(seed)
    model = build(adapted)
    history = train_loop(model, splits.train, TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                                                          progress=True), val_set=splits.val)
    test = evaluate(model, splits.test)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, out / "checkpoint.pt", dataset=dataset, seed=seed, test_accuracy=test["accuracy"])
    (out / "metrics.json").write_text(json.dumps({"history": history, "test": test}, indent=2))
    console.print(f"test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}); checkpoint {out / 'checkpoint.pt'}")


def fit_to_dataset(spec: NetworkSpec, splits) -> NetworkSpec:
    """The spec with the dataset's resolution, input channels and classes."""
    return spec.replace(resolution=splits.resolution, in_channels=splits.in_channels, num_classes=splits.num_classes)


@app.command()
def prune(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `mpdesign train`."),
    sparsity: Optional[float] = typer.Option(None, help="Fraction of prunable weights to remove."),
    keep_macs: Optional[float] = typer.Option(None, help="Fraction of prunable layers' MACs to keep (rd)."),
    method: str = typer.Option("rd", help="rd, rd-slope, lamp, global, uniform, uniform+ or erk."),
    mode: str = typer.Option("weights", help="weights (masks) or channels (a smaller network)."),
    schedule: str = typer.Option("iterative", help="iterative (20% of what is left per round) or one-shot."),
    dataset: Optional[str] = typer.Option(None, help="Dataset for calibration and fine-tuning (default: the "
                                                     "checkpoint's)."),
    calibration: int = typer.Option(256, help="Calibration images (the first of the training split)."),
    grid: int = typer.Option(101, help="Sparsity grid points per layer."),
    finetune_epochs: int = typer.Option(1, help="Fine-tuning epochs after each round (0: none)."),
    out: Path = typer.Option(Path("pruned.pt"), help="Pruned checkpoint."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Prune a trained checkpoint with rate-distortion allocation or a baseline."""
    from designer.checkpoint import load_checkpoint, save_checkpoint
    from designer.pruning.curves import default_grid
    from designer.pruning.prune import prune_model
    from designer.train.data import load_dataset
    from designer.train.loop import TrainConfig, evaluate, train as train_loop
    if mode not in ("weights", "channels"):
        _fail(f"--mode: must be weights or channels, got {mode!r}")
    try:
        model, metadata = load_checkpoint(checkpoint)
        name = dataset or metadata.get("dataset")
        if name is None:
            raise ValueError("--dataset: the checkpoint names no dataset; give one")
        splits = load_dataset(name, seed=metadata.get("seed", 0))
        calib = splits.train.tensors[0][:calibration]
        finetune = None
        if finetune_epochs:
            config = TrainConfig(epochs=finetune_epochs, lr=0.01, warmup_epochs=0, seed=metadata.get("seed", 0))
            finetune = lambda m: train_loop(m, splits.train, config)  # noqa: E731
        before = evaluate(model, splits.test)
        if mode == "channels":
            _prune_channels(model, calib, splits, sparsity, keep_macs, finetune, before, out, metadata, as_json)
            return
        report = prune_model(model, calib, method=method, sparsity=sparsity, keep_macs=keep_macs, schedule=schedule,
                             finetune=finetune, grid=default_grid(grid), progress=not as_json)
    except ValueError as error:
        _fail(str(error))
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
        result = allocate_curves(Curves.load(curves), keep_weights=keep_weights, keep_macs=keep_macs, method=method,
                                 bins=bins or None)
    except ValueError as error:
        _fail(str(error))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for name, value in result.sparsity.items():
            console.print(f"{name}: {value:.4f}")
        console.print(f"distortion {result.distortion:.6g}, kept weights {result.kept_weights:,.0f}, "
                      f"kept MACs {result.kept_macs:,.0f}")


@app.command("map")
def map_graph(
    graph: Path = typer.Argument(..., help="A graph JSON (node-link, HMCOS, mpdesign), a spec JSON or a checkpoint."),
    scratchpad: str = typer.Option("M_H", help="Bytes, or M_R, M_H, M_P."),
    mode: str = typer.Option("joint", help="joint (schedule, addresses, spills), fixed (the graph's order) or "
                                          "divide (windows, for large graphs)."),
    time_limit: float = typer.Option(60.0, help="Seconds for CP-SAT."),
    max_reloads: int = typer.Option(2, help="Reloads allowed per tensor."),
    weights: bool = typer.Option(False, "--weights", help="Treat weights as tensors (spec/checkpoint/random graphs)."),
    bytes_per_element: int = typer.Option(1, help="Bytes per element when tracing a network (8-bit: 1)."),
    out: Optional[Path] = typer.Option(None, help="Write the mapping file here."),
    plot: Optional[Path] = typer.Option(None, help="Draw the scratchpad layout here (PNG)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Map a DNN graph onto a scratchpad: schedule, addresses and spills, against baselines."""
    from designer.mapping.graph import GraphError, from_torch, load_graph
    from designer.mapping.plot import plot_layout
    from designer.mapping.problem import MappingError, MappingProblem, budgets, parse_scratchpad
    err = Console(stderr=True)
    try:
        if graph.suffix == ".pt":
            from designer.checkpoint import load_checkpoint
            from designer.network import example_input
            model, _ = load_checkpoint(graph)
            tensor_graph = from_torch(model, example_input(model.spec, 1), bytes_per_element, weights,
                                      model.spec.name or graph.stem)
        else:
            tensor_graph = load_graph(graph, include_weights=weights, bytes_per_element=bytes_per_element)
        err.print(f"[dim]{tensor_graph}; computing budgets (M_P by CP-SAT)...[/]")
        limits = budgets(tensor_graph, time_limit=min(20.0, time_limit))
        problem = MappingProblem(tensor_graph, parse_scratchpad(scratchpad, limits), mode=mode,
                                 time_limit=time_limit, max_reloads=max_reloads)
        err.print(f"[dim]solving at {problem.scratchpad_bytes:,} bytes (CP-SAT, up to {time_limit:g} s)...[/]")
        result = problem.solve(min_peak_order=limits.min_peak_order)
    except (GraphError, MappingError, ValueError) as error:
        _fail(str(error))
    if result.mapping is None:
        _fail(f"no mapping found: {result.solve.message}")
    if out is not None:
        result.mapping.save(out, tensor_graph)
    if plot is not None:
        plot_layout(tensor_graph, result.mapping, plot)
    if as_json:
        print(json.dumps({**result.to_dict(), "budgets": limits.to_dict(), "valid": bool(result.replay)}, indent=1))
        return
    console.print(f"{tensor_graph}\nM_R {limits.required:,}   M_P {limits.peak:,}"
                  f"{'' if limits.peak_proven else ' (best found, not proven)'}   M_H {limits.halfway:,}   "
                  f"scratchpad {problem.scratchpad_bytes:,} bytes")
    table = Table(title="off-chip traffic (spilled + retrieved bytes)")
    table.add_column("mapping")
    table.add_column("bytes", justify="right")
    for name, value in sorted(result.baseline_bytes().items(), key=lambda kv: kv[1]):
        table.add_row(f"baseline {name}", f"{value:,}")
    table.add_row(f"[bold]{result.mapping.method}[/]", f"[bold]{result.offchip_bytes:,}[/]")
    console.print(table)
    gap = _percent(result.solve.gap)
    bound = "n/a" if result.solve.bound is None else f"{result.solve.bound:,.0f}"
    console.print(f"status {result.solve.status}   bound {bound}   gap {gap}   {result.solve.seconds:.1f} s   "
                  f"simulator: {'valid' if result.replay else 'INVALID ' + '; '.join(result.replay.errors[:3])}")


@app.command()
def pipeline(
    dataset: str = typer.Option("digits", help="digits, mnist5k, shapes, or an .npz file."),
    macs: float = typer.Option(2.5e6, help="MACs budget of the design."),
    params: float = typer.Option(1.2e5, help="Parameter budget of the design."),
    sparsity: float = typer.Option(0.7, help="Pruning target (fraction of prunable weights removed)."),
    scratchpad: str = typer.Option("M_H", help="Scratchpad bytes, or M_R, M_H, M_P."),
    epochs: int = typer.Option(15, help="Training epochs."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/pipeline"), help="Run folder (report.md, plots, checkpoints)."),
) -> None:
    """Design under a budget -> train -> prune (RD) -> fine-tune -> map onto a scratchpad."""
    from designer.pipeline import PipelineConfig, run_pipeline
    config = PipelineConfig(dataset=dataset, macs=macs, params=params, sparsity=sparsity, scratchpad=scratchpad,
                            epochs=epochs, seed=seed)
    try:
        run_pipeline(config, out, log=console.print)
    except (DesignError, SpecError, ValueError, RuntimeError) as error:
        _fail(str(error))


@app.command()
def specs() -> None:
    """List the built-in specs."""
    for name in zoo.names():
        console.print(name)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
