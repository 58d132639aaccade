"""`mpdesign inspect`, `design` and `specs`: network specs and the DeepMAD design problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from designer import checks, zoo
from designer.cli.common import (DEVICES, NO_SOLUTION, choice_option, console, fail, force_option,
                                 load_spec, note, parse_list, percent, quiet_option, si, warning)
from designer.costs import COUNTINGS
from designer.families import NAMES as FAMILY_NAMES
from designer.report import inspect_spec
from designer.spec import SpecError
from designer.units import parse_bytes

# the names the library accepts, listed here so that `--help` needs no solver import
# (tests/test_packaging.py checks them against designer.design and designer.design.latency)
DESIGN_OBJECTIVES = ("score", "penalised")
DESIGN_METHODS = ("auto", "exact", "refine")
PRECISION_NAMES = ("fp32", "bf16", "fp16")

if TYPE_CHECKING:
    from designer.design.problem import DesignProblem

app = typer.Typer()


def solve_design(problem: DesignProblem, **options):
    """:func:`designer.design.solve.solve`, loaded when a design is asked for: pyomo and HiGHS
    take about a second to import, which `--help` and `specs` should not wait for."""
    from designer.design.solve import solve
    return solve(problem, **options)
# the problem's fields as `design` spells them, so that every error names what the user typed
DESIGN_OPTIONS = {
    "max_macs": "--macs", "max_params": "--params", "max_layers": "--layers", "max_latency_ms": "--latency-ms",
    "latency_profile": "--profile", "effectiveness": "--effectiveness", "max_activation_bytes":
    "--max-activation-bytes", "bytes_per_element": "--bytes-per-element", "max_depth_spread": "--max-depth-spread",
    "time_limit": "--time-limit", "rel_gap": "--gap", "threads": "--threads", "method": "--method",
    "first_stage_max_depth": "--first-stage-max-depth", "stem_widths": "--stem-widths", "out_widths": "--widths",
    "depths": "--depths", "strides": "--strides", "alpha": "--alpha", "head": "--head", "resolution": "--resolution",
    "num_classes": "--classes", "family": "--family", "families": "--family", "objective": "--objective",
    "counting": "--counting",
}


@app.command()
def inspect(
    spec: Optional[str] = typer.Argument(None, help="Spec JSON, TinyNAS structure file, or built-in name (see "
                                                    "`mpdesign specs`); or use --model."),
    model_ref: Optional[str] = typer.Option(None, "--model", help="Your own model: PATH.py:FACTORY or "
                                                                  "package.module:factory; params and MACs per module."),
    input_shape: Optional[str] = typer.Option(None, help="--model: the input shape, e.g. 3,224,224."),
    depth: int = typer.Option(2, help="--model: submodules down to this depth."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    resolution: Optional[int] = typer.Option(None, help="Input resolution (TinyNAS files carry none; default 224)."),
    classes: Optional[int] = typer.Option(None, help="Number of classes (TinyNAS files: default 1000)."),
    alpha: Optional[str] = typer.Option(None, help="DeepMAD stage weights, comma-separated (default: 1 for every "
                                                   "scoring stage, 8 for the last)."),
    bytes_per_element: int = typer.Option(1, help="Bytes per activation element for memory figures."),
) -> None:
    """Costs (params, MACs, activation memory) and DeepMAD scores of a network spec; or params
    and MACs per module of your own model (torch's FlopCounterMode)."""
    if model_ref is not None or spec is None:
        return _inspect_model(spec, model_ref, input_shape, depth, as_json)
    try:
        checks.integer(bytes_per_element, "--bytes-per-element", minimum=1)
        for value, option in ((resolution, "--resolution"), (classes, "--classes")):
            if value is not None:
                checks.integer(value, option, minimum=1)
        network = load_spec(spec, resolution, classes)
        report = inspect_spec(network, parse_list(alpha, "--alpha"), bytes_per_element)
    except (SpecError, ValueError) as err:
        fail(str(err))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"{report['name'] or spec} at {report['resolution']}x{report['resolution']}")
    for column in ("stage", "family", "out", "btn", "k", "L", "stride", "params", "MACs", "max act. bytes"):
        table.add_column(column, justify="right")
    for i, row in enumerate(report["stages"]):
        table.add_row(str(i), row["family"], str(row["out"]), str(row["btn"]), str(row["k"]), str(row["L"]),
                      str(row["stride"]), si(row["params"]), si(row["macs"]), si(row["max_activation_bytes"]))
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
        + (f"TinyNAS counting: FLOPs {report['tinynas_flops']:,}, model size {report['tinynas_model_size']:,}\n"
           if report["tinynas_flops"] is not None else "")
        + f"layers {report['layers']}   effectiveness {report['effectiveness']:.4f}   "
        f"DeepMAD score {report['deepmad_score']:.2f}   depth penalty {report['depth_penalty']:.2f}\n"
        f"largest single-layer activation footprint {report['max_activation_bytes']:,} bytes "
        f"at {report['bytes_per_element']} byte(s)/element")


def _inspect_model(spec: Optional[str], model_ref: Optional[str], input_shape: Optional[str], depth: int,
                   as_json: bool) -> None:
    from designer.user_model import build_user_model, check_forward, inspect_module, parse_input_shape
    try:
        if spec is not None or model_ref is None:
            raise ValueError("give a spec or --model PATH.py:FACTORY (exactly one)")
        if input_shape is None:
            raise ValueError("--input-shape: needed with --model, e.g. 3,224,224")
        checks.integer(depth, "--depth", minimum=0)
        shape = parse_input_shape(input_shape)
        model = build_user_model(model_ref)
        check_forward(model, shape)
        report = inspect_module(model, shape, depth)
    except ValueError as err:
        fail(str(err))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"{report['model']} at {tuple(report['input_shape'])}")
    for column in ("module", "type", "params", "MACs"):
        table.add_column(column, justify="left" if column in ("module", "type") else "right")
    for row in report["modules"]:
        table.add_row(row["module"], row["type"], si(row["params"]), si(row["macs"]))
    table.add_row("total", "", si(report["params"]), si(report["macs"]), style="bold")
    console.print(table)


@app.command()
def design(
    family: str = choice_option("bottleneck", FAMILY_NAMES, "Block family; several, comma-separated (e.g. "
                                "inverted,bottleneck), let the solver pick each stage's (the first gives the "
                                "stride pattern)."),
    resolution: int = typer.Option(224, help="Input resolution."),
    classes: int = typer.Option(1000, help="Number of classes."),
    macs: Optional[float] = typer.Option(None, help="MACs budget (convs and linears); with --counting tinynas, "
                                         "TinyNAS's FLOPs."),
    params: Optional[float] = typer.Option(None, help="Parameter budget; with --counting tinynas, TinyNAS's model "
                                           "size (no classifier)."),
    counting: str = choice_option("mpdesign", COUNTINGS, "How --macs and --params count: mpdesign (MACs and params, "
                                 "classifier included) or tinynas (the DeepMAD authors' FLOPs: conv MACs + BN, "
                                 "activation, pooling and projected residual-add elements, no classifier; model "
                                 "size without the classifier). tinynas: bottleneck and basic families."),
    effectiveness: Optional[float] = typer.Option(
        None, help="Effectiveness budget rho0 (default: the family's, 0.3 or 0.5; with several families the "
                   "smallest of theirs)."),
    layers: Optional[int] = typer.Option(None, help="Budget on DeepMAD's layer count."),
    strides: Optional[str] = typer.Option(None, help="The stem's stride then one per stage, e.g. 2,2,2,2,1,2."),
    head: Optional[int] = typer.Option(None, help="Channels of a fixed 1x1 head conv."),
    no_monotone: bool = typer.Option(False, "--no-monotone", help="Allow stage widths to decrease."),
    max_activation_bytes: Optional[str] = typer.Option(None, help="Largest single-layer inputs + output footprint: "
                                                                  "bytes, or with a unit (256KiB, 1.5MB)."),
    bytes_per_element: int = typer.Option(1, help="Bytes per activation element for the footprint budget."),
    max_depth_spread: Optional[int] = typer.Option(None, help="Largest difference between stage depths."),
    latency_ms: Optional[float] = typer.Option(None, help="Latency budget in ms, modelled by --profile."),
    profile: Optional[Path] = typer.Option(None, help="A latency profile written by `mpdesign profile`."),
    measure: bool = typer.Option(False, "--measure", help="Also time the design on the profile's device."),
    alpha: Optional[str] = typer.Option(None, help="Stage weights, comma-separated (default: 1 per scoring stage, "
                                                   "8 for the last)."),
    stem_widths: Optional[str] = typer.Option(None, help="Stem width range LO,HI (default 16,64; the DeepMAD "
                                                         "authors' space starts at 8)."),
    widths: Optional[str] = typer.Option(None, help="Stage width range LO,HI (default 16,2048)."),
    depths: Optional[str] = typer.Option(None, help="Blocks per stage LO,HI (default 1,16)."),
    first_stage_max_depth: Optional[int] = typer.Option(3, help="Most blocks in the first stage (0: as --depths)."),
    objective: str = choice_option("score", DESIGN_OBJECTIVES, "score (the DeepMAD score) or penalised (the score minus the "
                                  "authors' depth penalty 10 exp(std of the later stages' depths), as TinyNAS's "
                                  "search maximises)."),
    time_limit: float = typer.Option(60.0, help="Seconds."),
    gap: float = typer.Option(0.01, help="Stop once the relative gap is at most this."),
    method: str = choice_option("auto", DESIGN_METHODS, "auto, exact (one MILP over the grid) or refine."),
    threads: int = typer.Option(1, help="HiGHS threads."),
    out: Optional[Path] = typer.Option(None, help="Write the designed spec here (spec JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    force: bool = force_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Design a network that maximises the DeepMAD score under budgets, with a proven bound."""
    from designer.design.problem import OBJECTIVES, DesignError, DesignProblem
    try:
        checks.writable_file(out, "--out")
        names = [name.strip() for name in family.split(",")]
        for name in names:
            checks.choice(name, "--family", FAMILY_NAMES)
        checks.choice(objective, "--objective", OBJECTIVES)
        checks.choice(counting, "--counting", COUNTINGS)
        if (latency_ms is None) != (profile is None):
            raise ValueError("--latency-ms and --profile go together (the budget and the model of it)")
        latency_profile = None
        if profile is not None:
            from designer.design.latency import LatencyProfile
            loaded = LatencyProfile.load(profile)
            if measure and loaded.device.startswith("cuda"):
                import torch
                if not torch.cuda.is_available():  # --measure times on the profile's device
                    raise ValueError(f"--measure: the profile was measured on {loaded.device}, and torch sees no "
                                     f"CUDA device here to time the design on")
            latency_profile = loaded.to_dict()
        problem = DesignProblem(
            family=names[0], families=names if len(names) > 1 else None, resolution=resolution, num_classes=classes,
            strides=parse_list(strides, "--strides", int),
            head=head, monotone=not no_monotone, max_macs=macs, max_params=params, max_layers=layers,
            effectiveness=effectiveness if effectiveness is not None else "family",
            max_activation_bytes=None if max_activation_bytes is None else parse_bytes(max_activation_bytes,
                                                                                       "--max-activation-bytes"),
            bytes_per_element=bytes_per_element,
            max_depth_spread=max_depth_spread, alpha=parse_list(alpha, "--alpha"), max_latency_ms=latency_ms,
            latency_profile=latency_profile, objective=objective, counting=counting, labels=DESIGN_OPTIONS,
            **_space(stem_widths, widths, depths, first_stage_max_depth))
        from designer.design.solve import check_arguments, check_budgets
        check_arguments(problem, time_limit, gap, threads, method)
        check_budgets(problem)

        def report(step: dict) -> None:
            score = "none yet" if step["score"] is None else f"{step['score']:.2f}"
            gap_text = percent(step["gap"])
            note(f"iteration {step['iteration']}: best {score}, bound {step['bound']:.2f}, "
                      f"gap {gap_text}, {step['seconds']:.1f} s")

        note(f"designing {family} networks at {resolution}x{resolution}: up to {time_limit:g} s, stopping at a "
             f"{100 * gap:g}% gap ...")
        result = solve_design(problem, time_limit=time_limit, rel_gap=gap, threads=threads, method=method,
                              progress=report)
    except (DesignError, SpecError, ValueError) as error:
        fail(str(error))
    if result.spec is not None and out is not None:
        result.spec.save(out)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    if result.spec is None:
        fail(f"no design found: {result.solve.message} ({result.status} after {result.solve.seconds:.1f} s)",
             code=NO_SOLUTION)
    if as_json:
        return
    table = Table(title=f"{family} design at {resolution}x{resolution}")
    for column in ("stage", "family", "out", "btn", "k", "L", "stride"):
        table.add_column(column, justify="left" if column == "family" else "right")
    table.add_row("stem", "", str(result.spec.stem.out), "", str(result.spec.stem.k), "1", str(result.spec.stem.stride))
    for i, stage in enumerate(result.spec.stages, start=1):
        table.add_row(str(i), stage.family, str(stage.out), str(stage.btn), str(stage.k), str(stage.L),
                      str(stage.stride))
    console.print(table)
    bound = "none" if result.solve.bound is None else f"{result.solve.bound:.2f}"
    gap_text = percent(result.solve.gap)
    value = ("" if objective == "score" else
             f"objective {result.score - result.depth_penalty:.2f} (score less depth penalty)   ")
    console.print(
        f"status {result.status}   {value}score {result.score:.2f}   bound {bound}   gap {gap_text}   "
        f"{result.solve.seconds:.1f} s ({result.solve.solver})\n"
        f"MACs {result.macs:,}   params {result.params:,}   effectiveness {result.effectiveness:.4f}   "
        f"layers {result.layers}   depth penalty {result.depth_penalty:.2f}   "
        f"max activation {result.max_activation_bytes:,} B")
    if counting != "mpdesign":
        console.print(f"{problem.budget_names[0]} {result.counted[0]:,}   {problem.budget_names[1]} "
                      f"{result.counted[1]:,}")
    if result.latency_ms is not None:
        line = f"modelled latency {result.latency_ms:.3f} ms"
        if measure:
            line += f", measured {_measured_ms(result.spec, problem.latency_model):.3f} ms"
        console.print(f"{line} (batch {problem.latency_model.batch}, {problem.latency_model.precision}, "
                      f"{problem.latency_model.device})")
    if out is not None:
        console.print(f"spec written to {out}")


def _space(stem_widths: str | None, widths: str | None, depths: str | None, first_stage_max_depth: int | None) -> dict:
    """The search space's ranges given on the command line (the problem's defaults otherwise)."""
    space = {}
    for option, field, text in (("--stem-widths", "stem_widths", stem_widths), ("--widths", "out_widths", widths),
                                ("--depths", "depths", depths)):
        values = parse_list(text, option, int)
        if values is not None:
            if len(values) != 2:
                raise ValueError(f"{option}: give LO,HI, got {text!r}")
            space[field] = tuple(values)
    if first_stage_max_depth is not None:
        checks.integer(first_stage_max_depth, "--first-stage-max-depth", minimum=0)
        space["first_stage_max_depth"] = first_stage_max_depth or None
    return space


def _measured_ms(spec, model) -> float:
    """The design's median forward time on the profile's device, precision and batch."""
    from designer.design.latency import measure_ms
    device = "cpu" if model.device.startswith("cpu") else "cuda"
    return measure_ms(spec, device, model.precision, model.batch)


@app.command("profile")
def profile_command(
    device: str = choice_option("cpu", DEVICES, "Where to time (cuda:N for another GPU)."),
    precision: str = choice_option("fp32", PRECISION_NAMES, "Autocast precision."),
    batch: int = typer.Option(1, help="Batch size the latency is for."),
    quick: bool = typer.Option(False, "--quick", help="A small grid (seconds on a CPU)."),
    networks: int = typer.Option(0, help="Fit on this many random whole networks (every family) instead of "
                                         "blocks: whole networks carry overheads blocks do not (0: blocks)."),
    resolution: int = typer.Option(224, help="Input resolution of the random networks (with --networks)."),
    seed: int = typer.Option(0, help="Seed of the random networks."),
    out: Path = typer.Option(Path("profile.json"), help="Where the profile goes."),
    max_error: float = typer.Option(0.3, help="Refuse to write a fit whose median error on held-out samples is "
                                              "above this fraction (a busy machine times noise, not layers); "
                                              "raise it to keep such a fit."),
    force: bool = force_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Time blocks (or whole networks) of every family on this device and fit the latency
    model `design --latency-ms` uses."""
    from designer.checkpoint import resolve_device
    from designer.design.latency import PRECISIONS, profile as measure_profile
    try:
        checks.writable_file(out, "--out")
        checks.choice(precision, "--precision", PRECISIONS)
        checks.integer(batch, "--batch", minimum=1)
        checks.integer(networks, "--networks", minimum=0)
        checks.integer(seed, "--seed", minimum=0, maximum=2**32 - 1)
        checks.integer(resolution, "--resolution", minimum=16)
        checks.positive(max_error, "--max-error")
        resolve_device(device, "--device")
    except ValueError as error:
        fail(str(error))
    what = "networks" if networks else "blocks"
    result = measure_profile(device, precision, batch, quick, networks=networks, resolution=resolution, seed=seed,
                             progress=lambda done, total: note(f"{done}/{total} {what} timed")
                             if done % 8 == 0 or done == total else None)
    fit = result.fit
    quality = (f"fit on {fit['samples']:.0f} {what}: median error {100 * fit['median_error']:.1f}%, worst "
               f"{100 * fit['worst_error']:.1f}%, on held-out {what} {100 * fit['held_out_error']:.1f}%; timing "
               f"noise {100 * fit['noise']:.1f}%")
    if fit["held_out_error"] > max_error:
        fail(f"the latency fit is not written: {quality}, above --max-error {max_error:g} (other processes were "
             f"likely running: profile on a quiet machine, or give --max-error {fit['held_out_error']:.2f} to keep "
             f"it)", code=1)
    if fit["noise"] > 0.1:
        warning(f"timings repeated {100 * fit['noise']:.0f}% apart: the machine is busy, and the fit is noisy")
    result.save(out)
    console.print(f"profile of {result.device} ({precision}, batch {batch}) written to {out}; {quality}")


@app.command()
def specs() -> None:
    """List the built-in specs."""
    for name in zoo.names():
        console.print(name)
