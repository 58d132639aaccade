"""The whole job: design under a budget -> train -> prune (rate-distortion) -> fine-tune -> map
onto a scratchpad -> quantize to int8 (an ONNX file run by ONNX Runtime, mapped as stored);
writes ``report.md`` and plots into the run folder.

Every step is one API call a notebook could make too; this module only chains them and
records their figures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from designer import checks, files
from designer.checkpoint import resolve_device, save_checkpoint
from designer.design import DesignProblem, solve
from designer.design.problem import halving_strides
from designer.entropy import deepmad_scores
from designer.errors import Error
from designer.families import NAMES as FAMILY_NAMES
from designer.mapping.sources.importer import export
from designer.mapping.core.plot import plot_layout
from designer.mapping.problem import check_scratchpad
from designer.mapping.tiling.search import candidates, map_tiled, plot_curve, smallest_footprint, traffic_curve
from designer.mapping.tiling.plan import model_macs
from designer.network import build, example_input
from designer.pruning.curves import default_grid
from designer.pruning.prune import prune_model
from designer.train.data import load_dataset
from designer.train.loop import TrainConfig, evaluate, train


@dataclass
class PipelineConfig:
    dataset: str = "digits"
    family: str = "bottleneck"
    macs: float = 2.5e6
    params: float = 1.2e5
    effectiveness: float = 0.5
    design_seconds: float = 20.0
    epochs: int = 15
    sparsity: float = 0.7
    prune_grid: int = 21
    calibration: int = 128
    scratchpad: str = "auto"  # bytes, M_R/M_H/M_P, or auto: the smallest footprint a tiling reaches (max_extra_macs)
    # of the model's MACs, at most, recomputed by tiling: on the demo's 8 x 8 digits a 3 x 3 convolution's
    # halo is a large part of a 4 x 4 patch (2 x 2 patches of its pruned network recompute 48%)
    max_extra_macs: float = 0.5
    curve_points: int = 5  # scratchpad sizes on the traffic curve (from the smallest tiled footprint to M_P)
    map_seconds: float = 30.0
    seed: int = 0
    device: str = "auto"  # training, curves, BN re-estimation and fine-tuning: auto (CUDA when present), cpu, cuda
    progress: bool = False  # bars for training epochs and pruning rounds, on stderr (the CLI turns them on)
    # what an error names for a field: the command line passes its options ({"macs": "--macs"}), so a
    # message is written with the caller's names
    labels: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Every field checked before any step runs (a pipeline that fails after minutes of
        design and training for a typo in its last step's option helps nobody)."""
        checks.choice(self.family, self.label("family"), FAMILY_NAMES)
        checks.positive(self.macs, self.label("macs"))
        checks.positive(self.params, self.label("params"))
        checks.positive(self.effectiveness, self.label("effectiveness"))
        checks.time_limit(self.design_seconds, self.label("design_seconds"))
        checks.integer(self.epochs, self.label("epochs"), minimum=1)
        checks.fraction(self.sparsity, self.label("sparsity"), include_one=False)
        checks.integer(self.prune_grid, self.label("prune_grid"), minimum=2)
        checks.integer(self.calibration, self.label("calibration"), minimum=1)
        if self.scratchpad != "auto":
            check_scratchpad(self.scratchpad, self.label("scratchpad"))
        checks.number(self.max_extra_macs, self.label("max_extra_macs"), minimum=0)
        checks.integer(self.curve_points, self.label("curve_points"), minimum=2)
        checks.time_limit(self.map_seconds, self.label("map_seconds"))
        checks.integer(self.seed, self.label("seed"), minimum=0)
        resolve_device(self.device, self.label("device"))

    def label(self, name: str) -> str:
        """How an error names field ``name`` (:attr:`labels`, else the field's own name)."""
        return self.labels.get(name, name)


class PipelineError(Error, RuntimeError):
    """A step failed; the message names it and the steps that completed (their files stay)."""


def pipeline_problem(config: PipelineConfig, resolution: int, in_channels: int, classes: int) -> DesignProblem:
    """A design problem sized for the dataset: stem stride 1, then stages that halve the
    resolution down to about 2x2 (at most four), scored with the default stage weights."""
    strides = halving_strides(resolution, max_halvings=3)
    return DesignProblem(family=config.family, resolution=resolution, in_channels=in_channels, num_classes=classes,
                         strides=strides, max_macs=config.macs,
                         max_params=config.params, effectiveness=config.effectiveness, out_widths=(8, 256),
                         stem_widths=(8, 32), depths=(1, 4), first_stage_max_depth=2, name="pipeline-design")


def run_pipeline(config: PipelineConfig, out: str | Path, log: Callable[[str], None] = print) -> dict:
    """Run the four steps into ``out``. Bad inputs (the dataset, budgets, output folder) are
    refused before the first step; a step that fails raises :class:`PipelineError` naming the
    steps that completed."""
    out = checks.writable_folder(out, config.label("out"))
    if out.is_dir() and any(out.iterdir()):  # a folder describes one run: never mix two runs' files
        held = sorted(p.name for p in out.iterdir())
        raise ValueError(f"{config.label('out')}: {out} already holds files ({', '.join(held[:4])}{', ...' if len(held) > 4 else ''}); "
                         f"give a new or empty folder")
    checks.integer(config.seed, config.label("seed"), minimum=0, maximum=2**32 - 1)
    splits = load_dataset(config.dataset, seed=config.seed)
    problem = pipeline_problem(config, splits.resolution, splits.in_channels, splits.num_classes)
    completed: list[str] = []
    try:
        return _run_steps(config, out, splits, problem, completed, log)
    except Exception as error:
        if not completed and isinstance(error, ValueError):
            raise  # bad input the first step found (e.g. budgets no design meets): nothing was made
        done = ", ".join(completed) if completed else "none"
        raise PipelineError(f"step {len(completed) + 1} ({['design', 'train', 'prune', 'map', 'quantize'][len(completed)]}) "
                            f"failed: {error}; steps completed: {done}"
                            + (f" (their files are in {out})" if completed else "")) from error


def _run_steps(config: PipelineConfig, out: Path, splits, problem: DesignProblem, completed: list[str],
               log: Callable[[str], None]) -> dict:
    figures: dict = {"config": asdict(config)}
    torch.manual_seed(config.seed)

    # 1. design
    log(f"[1/5] design: maximise the DeepMAD score under {config.macs:g} MACs, {config.params:g} params ...")
    design = solve(problem, time_limit=config.design_seconds,
                   progress=lambda s: log(f"      iteration {s['iteration']}: best {_number(s['score'])}, "
                                          f"bound {_number(s['bound'])}"))
    if design.spec is None:
        raise RuntimeError(f"design: no design found ({design.solve.message})")
    spec = design.spec
    out.mkdir(parents=True, exist_ok=True)  # only once there is something to write
    spec.save(out / "design.json")
    figures["design"] = {k: v for k, v in design.to_dict().items() if k not in ("problem", "history")}
    log(f"      score {design.score:.2f} (bound {_number(design.solve.bound)}, {design.status}), MACs {design.macs:,}, "
        f"params {design.params:,}")
    completed.append("design")

    # 2. train
    log(f"[2/5] train on {splits.name} for {config.epochs} epochs ...")
    model = build(spec)
    start = time.perf_counter()
    history = train(model, splits.train, TrainConfig(epochs=config.epochs, seed=config.seed, device=config.device,
                                                     progress=config.progress),
                    val_set=splits.val)
    dense = evaluate(model, splits.test)
    save_checkpoint(model, out / "checkpoint.pt", dataset=config.dataset, seed=config.seed,
                    test_accuracy=dense["accuracy"])
    figures["train"] = {"seconds": time.perf_counter() - start, "test_accuracy": dense["accuracy"],
                        "history": history}
    log(f"      test accuracy {dense['accuracy']:.4f}")
    completed.append("train")

    # 3. prune
    log(f"[3/5] prune to {config.sparsity:.0%} sparsity (rate-distortion, iterative, fine-tuning each round) ...")
    calibration = splits.train.tensors[0][:config.calibration]
    finetune = TrainConfig(epochs=1, lr=0.01, warmup_epochs=0, seed=config.seed, device=config.device)
    report = prune_model(model, calibration, method="rd", sparsity=config.sparsity, schedule="iterative",
                         progress=config.progress,
                         finetune=lambda m: train(m, splits.train, finetune), grid=default_grid(config.prune_grid))
    pruned = evaluate(model, splits.test)
    save_checkpoint(model, out / "pruned.pt", dataset=config.dataset, seed=config.seed,
                    test_accuracy=pruned["accuracy"], pruning=report.to_dict())
    figures["prune"] = {"test_accuracy": pruned["accuracy"], "rounds": report.rounds, "sparsity": report.sparsity}
    log(f"      sparsity {report.rounds[-1]['sparsity']:.3f}, test accuracy {pruned['accuracy']:.4f}")
    completed.append("prune")

    # 4. map
    log("[4/5] map onto a scratchpad (8-bit activations), tiled where that pays ...")
    mapped = _map_step(model, spec, config, out, log)
    figures["map"] = mapped["figures"]
    completed.append("map")

    # 5. quantize and map what would be deployed
    log("[5/5] quantize to int8 (GPTQ), write the ONNX file, run it in ONNX Runtime and map it ...")
    figures["quantize"] = _quantize_step(model, spec, splits, calibration, config, out, log)

    _plots(out, spec, problem.stage_alpha, history, report, mapped["graph"], mapped["mapping"])
    files.write_text(out / "figures.json", json.dumps(figures, indent=1, default=str))
    files.write_text(out / "report.md", _report(figures, spec))
    log(f"report written to {out / 'report.md'}")
    return figures


def _map_step(model, spec, config: PipelineConfig, out: Path, log: Callable[[str], None]) -> dict:
    """Map the pruned network: at the smallest footprint a tiling reaches within the MACs
    allowance (``scratchpad="auto"``), or at the scratchpad given; then the traffic curve from
    that footprint to M_P. Half the time each."""
    example = torch.randn(tuple(example_input(spec, 1).shape), generator=torch.Generator().manual_seed(config.seed))
    program = export(model.cpu().eval(), example)
    found = candidates(program, name=spec.name)
    total = model_macs(program.graph)
    low = smallest_footprint(found, config.max_extra_macs, total).required
    scratchpad = low if config.scratchpad == "auto" else config.scratchpad
    tiled = map_tiled(program, example, scratchpad, time_limit=config.map_seconds / 2,
                      max_extra_macs=config.max_extra_macs, name=spec.name, found=found)
    result, candidate = tiled.result, tiled.choice.candidate
    result.mapping.save(out / "mapping.json", result.problem.graph, result.solve)
    untiled = found[0].required
    log(f"      {candidate.describe()} at {result.problem.scratchpad_bytes:,} bytes (untiled M_R {untiled:,}): "
        f"{result.offchip_bytes:,} bytes off-chip ({result.solve.status}); simulator "
        f"{'valid' if result.replay else 'INVALID'}")
    rows = traffic_curve(found, low, max(untiled, result.problem.budgets.peak), config.curve_points,
                         time_limit=config.map_seconds / 2, max_extra_macs=config.max_extra_macs, total_macs=total,
                         start=(candidate, result.mapping) if result.problem.scratchpad_bytes <= low else None)
    plot_curve(rows, out / "curve.png", title=f"{spec.name}: traffic against scratchpad size")
    figures = {"operators": len(result.problem.graph.operators), "budgets": result.problem.budgets.to_dict(),
               "untiled_M_R": untiled, "tiling": candidate.describe(), "extra_macs": candidate.extra_macs,
               "model_macs": total, "max_abs_difference": tiled.max_abs_difference,
               "scratchpad_bytes": result.problem.scratchpad_bytes, "offchip_bytes": result.offchip_bytes,
               "baselines": result.baseline_bytes(), "status": str(result.solve.status), "method": result.method,
               "bound": result.solve.bound, "gap": result.solve.gap, "valid": bool(result.replay), "curve": rows}
    return {"figures": figures, "graph": result.problem.graph, "mapping": result.mapping}


def _quantize_step(model, spec, splits, calibration, config: PipelineConfig, out: Path,
                   log: Callable[[str], None]) -> dict:
    """The pruned network at 8 bits (its zeros kept): the ONNX file, its accuracy and latency in
    ONNX Runtime beside the float file's, and its map at M_R with each tensor at its stored bytes."""
    import copy

    from designer.mapping.problem import MappingProblem
    from designer.mapping.stages import solve as solve_mapping
    from designer.mapping.sources import load_graph
    from designer.quantization import GPTQ, quantize_model
    from designer.quantization.fold import fold_batchnorm
    from designer.quantization.onnx_file import export_onnx
    from designer.quantization.run import deployment
    network = copy.deepcopy(model).cpu().eval()
    float_model = copy.deepcopy(network)
    fold_batchnorm(float_model)
    quantized = quantize_model(network, calibration.cpu(), bits=(8,), rounding=GPTQ())
    example = example_input(spec, 1)
    path = out / "model-int8.onnx"
    size = export_onnx(quantized.model, quantized.plan, example, path)
    deployed = deployment(quantized.model, float_model, path, example, splits)
    graph = load_graph(path)
    result = solve_mapping(MappingProblem(graph, scratchpad="M_R", time_limit=config.map_seconds / 3))
    figures = {"onnx_bytes": size, **deployed, "M_R": result.problem.budgets.required,
               "offchip_bytes": result.offchip_bytes, "status": str(result.solve.status),
               "valid": bool(result.replay)}
    log(f"      {path.name}: {size:,} bytes ({size / deployed['float_onnx_bytes']:.2f}x float), ONNX Runtime accuracy "
        f"{deployed['accuracy_onnx']:.4f}, batch 32 {1e3 * deployed['latency_int_b32_s']:.2f} ms "
        f"({deployed['latency_int_b32_s'] / deployed['latency_float_b32_s']:.2f}x float); mapped at M_R = "
        f"{figures['M_R']:,} bytes: {result.offchip_bytes:,} bytes off-chip, simulator "
        f"{'valid' if result.replay else 'INVALID'}")
    return figures


def _plots(out: Path, spec, alpha, history, report, graph, mapping) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([h["epoch"] for h in history], [h["train_accuracy"] for h in history], label="train")
    ax.plot([h["epoch"] for h in history], [h["val_accuracy"] for h in history], label="validation")
    ax.set_xlabel("epoch"), ax.set_ylabel("accuracy"), ax.legend()
    fig.tight_layout(), files.save_figure(fig, out / "training.png", dpi=110)

    scores = deepmad_scores(spec, alpha)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(range(1, len(scores.stage_entropy) + 1), scores.stage_entropy)
    ax.set_xticks(range(1, len(scores.stage_entropy) + 1))  # stages are whole numbers
    ax.set_xlabel("scoring stage"), ax.set_ylabel("entropy H_i")
    fig.tight_layout(), files.save_figure(fig, out / "entropy.png", dpi=110)

    _rd_plot(plt, report.first_curves, report.first_allocation or {}, out / "rd_curves.png")

    plot_layout(graph, mapping, out / "layout.png")


def _rd_plot(plt, curves, chosen: dict[str, float], path: Path) -> None:
    """Distortion against sparsity for up to eight layers, each with the sparsity the DP chose
    marked on its curve; a symmetric-log axis, so zero distortion is drawn as zero."""
    import numpy as np
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    positive = [d for layer in curves.layers for d in layer.distortion if d > 0]
    for layer in curves.layers[:: max(1, len(curves.layers) // 8)]:
        line, = ax.plot(layer.sparsity, layer.distortion, label=layer.name, linewidth=1)
        if layer.name in chosen:
            s = chosen[layer.name]
            ax.plot([s], [np.interp(s, layer.sparsity, layer.distortion)], "o", color=line.get_color())
    ax.set_yscale("symlog", linthresh=min(positive, default=1e-6))
    ax.set_xlabel("layer sparsity (dots: the allocation chosen, first round)")
    ax.set_ylabel("output distortion (MSE)"), ax.legend(fontsize=6)
    fig.tight_layout(), files.save_figure(fig, path, dpi=110)


def _report(figures: dict, spec) -> str:
    d, t, p, m, q = figures["design"], figures["train"], figures["prune"], figures["map"], figures["quantize"]
    stages = "\n".join(f"| {i} | {s.out} | {s.btn} | {s.k} | {s.L} | {s.stride} |" for i, s in enumerate(spec.stages, 1))
    gap, map_gap = _percent(d["gap"]), _percent(m["gap"])
    baselines = "\n".join(f"| {name} | {value:,} |" for name, value in sorted(m["baselines"].items(), key=lambda x: x[1]))
    curve = "\n".join(f"| {r['scratchpad_bytes']:,} | {r['tiling']} | {r['objective']:,} | {_number(r['bound'])} | "
                      f"{_percent(r['gap'])} |" for r in m["curve"])
    return f"""# mpdesign pipeline report

Dataset `{figures['config']['dataset']}`, seed {figures['config']['seed']}.

## 1. Design (DeepMAD score by MILP)

Status {d['status']}, score {d['score']:.2f}, bound {_number(d['bound'])}, gap {gap}, {d['seconds']:.1f} s.
MACs {d['macs']:,} (budget {figures['config']['macs']:g}), params {d['params']:,} (budget
{figures['config']['params']:g}), effectiveness {d['effectiveness']:.4f}, {d['layers']} layers.

| stage | out | btn | k | L | stride |
|---|---|---|---|---|---|
| stem | {spec.stem.out} | | {spec.stem.k} | 1 | {spec.stem.stride} |
{stages}

![entropy per stage](entropy.png)

## 2. Training

Test accuracy {t['test_accuracy']:.4f} after {len(t['history'])} epochs ({t['seconds']:.1f} s).

![training](training.png)

## 3. Pruning (rate-distortion allocation, iterative)

Sparsity {p['rounds'][-1]['sparsity']:.4f} of the prunable weights in {len(p['rounds'])} rounds, kept MACs
{p['rounds'][-1]['kept_macs']:.4f}; test accuracy {p['test_accuracy']:.4f}.

![distortion curves](rd_curves.png)

## 4. Mapping onto a scratchpad

Untiled, the network needs M_R = {m['untiled_M_R']:,} bytes. At a scratchpad of {m['scratchpad_bytes']:,} bytes
the tiling chosen is {m['tiling']} ({_number(100 * m['extra_macs'] / max(1, m['model_macs']))}% of the model's
{m['model_macs']:,} MACs recomputed; tiled against untiled output, max |difference| {_number(m['max_abs_difference'])}):
{m['operators']} operators, M_R {m['budgets']['M_R']:,}, M_P {m['budgets']['M_P']:,} bytes. Off-chip traffic
{m['offchip_bytes']:,} bytes, status {m['status']}, bound {_number(m['bound'])}, gap {map_gap}; the simulator found
the mapping {'valid' if m['valid'] else 'INVALID'}.

| baseline | bytes |
|---|---|
{baselines}

![scratchpad layout](layout.png)

Traffic against scratchpad size, from the smallest tiled footprint to M_P (each point starts
from the one before, so the curve never rises):

| scratchpad | tiling | traffic | bound | gap |
|---|---|---|---|---|
{curve}

![traffic curve](curve.png)

## 5. Deployment: int8 ONNX file

`model-int8.onnx` (weights int8 per output channel by GPTQ, activations uint8, QDQ form):
{q['onnx_bytes']:,} bytes against {q['float_onnx_bytes']:,} for the float32 file. Run by ONNX Runtime:
test accuracy {q['accuracy_onnx']:.4f} (largest |logit| difference from the torch module
{_number(q['max_abs_difference'])}); one thread, batch 1 {1e3 * q['latency_int_b1_s']:.3f} ms (float
{1e3 * q['latency_float_b1_s']:.3f}), batch 32 {1e3 * q['latency_int_b32_s']:.2f} ms (float
{1e3 * q['latency_float_b32_s']:.2f}). Mapped as stored (int8 codes 1 byte, float tensors 4): M_R =
{q['M_R']:,} bytes, {q['offchip_bytes']:,} bytes off-chip at M_R, status {q['status']}, simulator
{'valid' if q['valid'] else 'INVALID'}.
"""


def _percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.2f}%"


def _number(value: float | None) -> str:
    """A score or bound as people read it: two decimals (whole bytes stay whole), or "none"."""
    if value is None:
        return "none"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
