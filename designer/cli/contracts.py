"""The rules every command keeps, declared once and enforced by one command class.

Each ``mpdesign`` command is a :class:`GuardedCommand`, which before the command's own code runs:

1. refuses an option given twice (click would keep the last value silently: ``--family basic
   --family bottleneck`` designed bottleneck networks);
2. refuses an option the chosen path cannot honour (:data:`APPLIES`: ``--bytes-per-element``
   with ``--tiling``, ``--max-extra-macs`` without it), naming the option and what it needs;
3. refuses an output that would replace an input, or two outputs that are one file
   (:data:`FILES`, through :func:`designer.paths.refuse_clashes`).

Both tables name every parameter of every command (``tests/test_contracts.py`` checks them
against the commands' ``--help``), so a new option must say where it applies and whether it
names a file, or the suite fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typer.core import TyperCommand, TyperGroup, TyperOption

from designer import checks
from designer.cli.common import fail, note, set_quiet
from designer.deadline import mark_command_start
from designer.paths import model_file, refuse_clashes

# --- where each option applies ---------------------------------------------------------------
# command -> parameter -> None (always) or (condition on the parsed values, what it needs)
Condition = Callable[[Mapping[str, Any]], bool]
ALWAYS = None


def _untiled(p: Mapping[str, Any]) -> bool:
    return p["tiling"] == "none" and p["curve"] is None


def _weights_rd(p: Mapping[str, Any]) -> bool:
    return p["mode"] == "weights" and str(p["method"]).startswith("rd") and p.get("nm") is None


UNTILED = (_untiled, "an untiled map (without --tiling or --curve: a tiled graph is the model's forward, fused, "
                     "in its own order)")
WITH_MODEL = (lambda p: p.get("model_ref") is not None, "--model")
WEIGHTS_MODE = (lambda p: p["mode"] == "weights", "--mode weights (channel pruning measures its own group curves)")
RD_WEIGHTS = (_weights_rd, "--mode weights with an rd method (the methods that measure distortion curves)")
CRITERION = (lambda p: p["mode"] == "weights" or p.get("model_ref") is not None,
             "--mode weights, or --mode channels with --model (an mpdesign checkpoint's channels are cut without a "
             "re-fit)")
ALLOCATED = (lambda p: p["mode"] == "weights" and p.get("nm") is None,
             "--mode weights under a budget (--nm fixes every layer's pattern: no allocation, no schedule)")

APPLIES: dict[str, dict[str, tuple[Condition, str] | None]] = {
    "map": {
        "graph": ALWAYS, "model_ref": ALWAYS, "input_shape": WITH_MODEL, "fuse": UNTILED,
        "save_graph": (lambda p: p["curve"] is None, "a map at one size (a curve maps many graphs)"),
        "training": UNTILED, "scratchpad": (lambda p: p["curve"] is None, "a map at one size (--curve sets its own "
                                            "sizes, LO:HI)"),
        "strategy": ALWAYS, "objective": ALWAYS, "order": UNTILED, "time_limit": ALWAYS, "max_reloads": UNTILED,
        "weights": ALWAYS, "out": ALWAYS,
        "bytes_per_element": (lambda p: not str(p["graph"] or "").endswith(".onnx"),
                              "a graph that does not give each tensor's type (an .onnx file does: int8 codes 1 byte, "
                              "float 4)"), "plot": ALWAYS, "as_json": ALWAYS,
        "start": UNTILED, "trust": ALWAYS, "force": ALWAYS, "quiet": ALWAYS,
        "tiling": (lambda p: p["curve"] is None, "a map at one size (--curve chooses a tiling at each size)"),
        "max_extra_macs": (lambda p: p["tiling"] == "auto" or p["curve"] is not None, "--tiling auto or --curve "
                           "(where a tiling is chosen)"),
        "points": (lambda p: p["curve"] is not None, "--curve"), "curve": ALWAYS, "mode": ALWAYS, "solver": ALWAYS,
    },
    "prune": {
        "checkpoint": ALWAYS, "model_ref": ALWAYS, "weights": WITH_MODEL, "input_shape": WITH_MODEL,
        "sparsity": ALWAYS, "keep_macs": ALWAYS, "nm": WEIGHTS_MODE, "method": ALLOCATED, "criterion": CRITERION,
        "mode": ALWAYS, "schedule": ALLOCATED, "dataset": ALWAYS, "calibration": ALWAYS, "grid": ALLOCATED,
        "curve_points": RD_WEIGHTS, "correction_rounds": RD_WEIGHTS, "finetune_epochs": ALWAYS, "device": ALWAYS,
        "out": ALWAYS, "save_curves": RD_WEIGHTS, "scheduler": RD_WEIGHTS, "as_json": ALWAYS,
        "threads": ALWAYS, "force": ALWAYS, "quiet": ALWAYS,
    },
    "quantize": {name: ALWAYS for name in (
        "checkpoint", "model_ref", "bits", "bits_avg", "size", "bops", "with_sparsity", "rounding", "dataset",
        "calibration", "qat_epochs", "out", "as_json", "threads", "force", "quiet")} | {
        "weights": WITH_MODEL, "input_shape": WITH_MODEL},
    "allocate": {"curves": ALWAYS, "sparsity": ALWAYS, "keep_weights": ALWAYS, "keep_macs": ALWAYS, "method": ALWAYS,
                 "bins": (lambda p: p["method"] == "dp", "--method dp"), "as_json": ALWAYS},
    "inspect": {
        "spec": ALWAYS, "model_ref": ALWAYS, "input_shape": WITH_MODEL, "depth": WITH_MODEL, "as_json": ALWAYS,
        **{name: (lambda p: p["model_ref"] is None, "a spec (--model reports params and MACs per module)")
           for name in ("resolution", "classes", "alpha", "bytes_per_element")},
    },
    "design": {
        **{name: ALWAYS for name in (
            "family", "resolution", "classes", "macs", "params", "counting", "effectiveness", "layers", "strides",
            "head", "no_monotone", "max_activation_bytes", "max_depth_spread", "latency_ms", "profile", "alpha",
            "stem_widths", "widths", "depths", "first_stage_max_depth", "objective", "time_limit", "gap", "method",
            "threads", "out", "as_json", "force", "quiet")},
        "bytes_per_element": (lambda p: p["max_activation_bytes"] is not None, "--max-activation-bytes"),
        "measure": (lambda p: p["profile"] is not None, "--profile (it times on the profile's device)"),
    },
    "profile": {
        **{name: ALWAYS for name in ("device", "precision", "batch", "quick", "networks", "out", "max_error", "force", "quiet")},
        **{name: (lambda p: p["networks"] > 0, "--networks N (random whole networks)")
           for name in ("resolution", "seed")},
    },
    "specs": {},
    "schema": {"name": ALWAYS},
    "train": {name: ALWAYS for name in (
        "spec", "dataset", "epochs", "optimizer", "lr", "weight_decay", "batch_size", "resolution", "device", "amp",
        "channels_last", "compile", "resident", "seed", "out", "threads", "force", "quiet")},
    "pipeline": {name: ALWAYS for name in (
        "dataset", "macs", "params", "sparsity", "scratchpad", "epochs", "seed", "device", "out", "quiet",
        "threads")},
    "sweep": {
        **{name: ALWAYS for name in ("sweep_file", "grid", "scheduler", "time_limit", "out", "plot", "as_json",
                                     "force", "quiet")},
        "workers": (lambda p: p["scheduler"] is None, "a local cluster (without --scheduler)"),
    },
}


# the commands that run torch for minutes (training, curves): their --threads sets torch's
# intra-op threads for the machine the command finds (designer.threads)
TORCH_COMMANDS = ("prune", "quantize", "train", "pipeline")


# --- which options name files ----------------------------------------------------------------
@dataclass(frozen=True)
class CommandFiles:
    """The parameters that name files a command reads (``inputs``) and writes (``outputs``);
    ``folders``: an output folder and the files the command writes in it; ``replaceable``: an
    (output, input) overwrite meant on purpose, allowed for inputs with one of the suffixes."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    folders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    replaceable: Mapping[tuple[str, str], tuple[tuple[str, ...], str]] = field(default_factory=dict)


FILES: dict[str, CommandFiles] = {
    "map": CommandFiles(inputs=("graph", "model_ref", "start"), outputs=("out", "save_graph", "plot"),
                        replaceable={("out", "graph"): ((".json",), "a mapping file reads as its graph, so mapping "
                                                                    "it again in place loses nothing")}),
    "prune": CommandFiles(inputs=("checkpoint", "model_ref", "weights", "dataset"), outputs=("out", "save_curves")),
    "quantize": CommandFiles(inputs=("checkpoint", "model_ref", "weights", "dataset"), outputs=("out",)),
    "allocate": CommandFiles(inputs=("curves",)),
    "inspect": CommandFiles(inputs=("spec", "model_ref")),
    "design": CommandFiles(inputs=("profile",), outputs=("out",)),
    "profile": CommandFiles(outputs=("out",)),
    "train": CommandFiles(inputs=("spec", "dataset"), folders={"out": ("checkpoint.pt", "metrics.json")}),
    "pipeline": CommandFiles(inputs=("dataset",), folders={"out": ("report.md", "figures.json")}),
    "sweep": CommandFiles(inputs=("sweep_file",), outputs=("out", "plot")),
    "specs": CommandFiles(),
    "schema": CommandFiles(),
}


def _label(param: Any, value: Any = None) -> str:
    """The option as a user types it (``--out``; ``--no-fuse`` for a flag turned off), or an
    argument's name (``GRAPH``)."""
    if isinstance(param, TyperOption) and value is False and param.secondary_opts:
        return param.secondary_opts[0]
    if isinstance(param, TyperOption):
        long = [o for o in param.opts if o.startswith("--")]
        return (long or param.opts)[0]
    return param.name.upper()


def _as_file(name: str, value: Any) -> Path | None:
    """The file a parameter's value names, if any: a model reference's source file; a spec or
    dataset given by name (``digits``, ``deepmad-r50``) names none."""
    if value is None:
        return None
    if name == "model_ref":
        return model_file(value)
    path = Path(value)
    if name in ("spec", "dataset") and not path.is_file():
        return None
    return path


def _flags_without_type(params: list) -> list:
    """A flag takes no value: no ``<bool>`` beside it in ``--help`` (typer shows one)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class PlainGroup(TyperGroup):
    """The ``mpdesign`` group: its flags (``--version``, ``--help``) shown without a type."""

    def get_params(self, ctx: Any) -> list:
        return _flags_without_type(super().get_params(ctx))


class GuardedCommand(TyperCommand):
    """A typer command that keeps the rules in this module's docstring before it runs."""

    def get_params(self, ctx: Any) -> list:
        return _flags_without_type(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        mark_command_start()  # --time-limit counts from here (designer.deadline)
        self._refuse_repeats(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        labels = {p.name: _label(p, ctx.params.get(p.name)) for p in self.params}
        given = {name for name in ctx.params
                 if getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")}
        try:
            self._refuse_inapplicable(ctx.params, given, labels)
            for line in self._refuse_clashes(ctx.params, labels):
                note(line)
            if self.name in TORCH_COMMANDS:
                checks.integer(ctx.params["threads"], "--threads", minimum=0)
        except ValueError as error:
            fail(str(error))
        set_quiet(ctx.params.get("quiet", False))
        if self.name in TORCH_COMMANDS:  # quietly: a bad input's error stays the only line
            from designer.threads import use_threads
            use_threads(ctx.params["threads"])
        return super().invoke(ctx)

    def _refuse_repeats(self, args: list[str]) -> None:
        counted: dict[str, list[str]] = {}
        owner = {}
        for param in self.params:
            if isinstance(param, TyperOption) and not param.multiple and not param.count:
                for option in (*param.opts, *param.secondary_opts):
                    owner[option] = param.name
        for token in args:
            if token == "--":
                break
            name = owner.get(token.split("=", 1)[0])
            if name is not None:
                counted.setdefault(name, []).append(token.split("=", 1)[0])
        for name, tokens in counted.items():
            if len(tokens) > 1:
                hint = " (several values go in one, comma-separated)" if name == "family" else ""
                fail(f"{tokens[-1]}: given {len(tokens)} times ({', '.join(tokens)}); give it once{hint}")

    def _refuse_inapplicable(self, values: Mapping[str, Any], given: set[str], labels: dict[str, str]) -> None:
        table = APPLIES[self.name]
        for name in sorted(given, key=list(values).index):
            rule = table[name]
            if rule is not None and not rule[0](values):
                raise ValueError(f"{labels[name]}: applies only with {rule[1]}; this command would ignore it, so "
                                 f"it is refused: drop it")

    def _refuse_clashes(self, values: Mapping[str, Any], labels: dict[str, str]) -> list[str]:
        declared = FILES[self.name]
        inputs = {labels[n]: _as_file(n, values[n]) for n in declared.inputs}
        outputs = {labels[n]: _as_file(n, values[n]) for n in declared.outputs}
        for name, written in declared.folders.items():
            if values[name] is not None:
                outputs.update({f"{labels[name]} ({f})": Path(values[name]) / f for f in written})
        allowed = {}
        for (out, source), (suffixes, reason) in declared.replaceable.items():
            if values[source] is not None and Path(values[source]).suffix in suffixes:
                allowed[(labels[out], labels[source])] = reason
        # a command that takes --force refuses outputs that exist without it
        return refuse_clashes(inputs, outputs, allowed, force=values.get("force", True))


def guard(commands: list) -> None:
    """Make every registered typer command a :class:`GuardedCommand`."""
    for command in commands:
        command.cls = GuardedCommand
