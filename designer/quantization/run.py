"""The quantize job behind `mpdesign quantize`, as one call a notebook can make too.

    summary = run_quantize(QuantizeRequest(checkpoint=Path("run/checkpoint.pt"), bits_avg=4))

:class:`QuantizeRequest` holds what the command line takes and is checked whole (naming the
options) before anything is loaded; :func:`run_quantize` loads the network (an mpdesign
checkpoint or a user's module, as ``prune`` does), quantizes it
(:func:`~designer.quantization.quantize.quantize_model`), optionally fine-tunes it with the fake
quantization in place (QAT), writes the ONNX file, runs it in ONNX Runtime on the test split and
compares it with the torch module, and times it beside the float file.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from designer import checks
from designer.quantization.budgets import BOPs, AverageBits, Budget, ModelSize
from designer.quantization.grid import WEIGHT_BITS, check_bits
from designer.quantization.quantize import check_sparsities
from designer.quantization.rounding import ROUNDINGS

CALIBRATION = 128  # GPTQ's paper uses 128 samples; here images, each many positions of every conv


@dataclass
class QuantizeRequest:
    """What to quantize (``checkpoint``, or ``model`` with ``weights`` and ``input_shape``), to
    which budget (one of ``bits_avg``, ``size``, ``bops``; none with one width in ``bits``:
    uniform), how, and where the ONNX file goes (``out``: default next to the input)."""

    checkpoint: Path | None = None
    model: str | None = None
    weights: Path | None = None
    input_shape: str | None = None
    bits: tuple[int, ...] = WEIGHT_BITS
    bits_avg: float | None = None
    size: str | int | None = None  # bytes, or with a unit: 300kB
    bops: float | None = None
    rounding: str = "gptq"
    with_sparsity: tuple[float, ...] = ()
    dataset: str | None = None
    calibration: int = CALIBRATION
    qat_epochs: int = 0
    out: Path | None = None
    force: bool = False
    progress: bool = False
    budget: Budget | None = field(default=None, init=False)

    def check(self) -> None:
        """Every field, naming the command line's options; nothing is loaded."""
        self.bits = check_bits(self.bits, "--bits")
        check_sparsities(self.with_sparsity)
        given = [(o, v) for o, v in (("--bits-avg", self.bits_avg), ("--size", self.size), ("--bops", self.bops))
                 if v is not None]
        if len(given) > 1:
            raise ValueError(f"give one budget, not {' and '.join(o for o, _ in given)}")
        if self.bits_avg is not None:
            if not min(self.bits) <= self.bits_avg:
                raise ValueError(f"--bits-avg: {self.bits_avg:g} is below the fewest bits offered, {min(self.bits)} "
                                 f"(--bits)")
            self.budget = AverageBits(self.bits_avg)
        elif self.size is not None:
            from designer.units import parse_bytes
            self.budget = ModelSize(parse_bytes(self.size, "--size"))
        elif self.bops is not None:
            self.budget = BOPs(self.bops)
        elif len(self.bits) > 1 or self.with_sparsity:
            raise ValueError("give a budget (--bits-avg, --size or --bops) to choose among the options, or one width "
                             "(--bits 8) for uniform quantization")
        checks.choice(self.rounding, "--rounding", tuple(ROUNDINGS))
        checks.integer(self.calibration, "--calibration", minimum=1)
        checks.integer(self.qat_epochs, "--qat-epochs", minimum=0)
        if (self.checkpoint is None) == (self.model is None):
            raise ValueError("give a checkpoint or --model PATH.py:FACTORY (exactly one)")
        self.out = Path(self.out) if self.out is not None else self.default_out()
        if self.out.suffix != ".onnx":
            raise ValueError(f"--out: the quantized network is written as ONNX: give a path ending in .onnx, got "
                             f"{self.out}")
        checks.writable_file(self.out, "--out")
        from designer.paths import model_file, refuse_clashes
        inputs = {"CHECKPOINT": self.checkpoint, "--model": model_file(self.model), "--weights": self.weights,
                  "--dataset": self.dataset if self.dataset and Path(self.dataset).is_file() else None}
        refuse_clashes(inputs, {"--out": self.out}, force=self.force)

    def default_out(self) -> Path:
        """Next to the checkpoint (or the --weights; else here, by the factory's name):
        ``run/checkpoint-quantized.onnx``."""
        source = self.checkpoint or self.weights
        base = (Path(source).with_suffix("") if source is not None
                else Path(str(self.model).rpartition(":")[2] or "model"))
        return base.with_name(f"{base.name}-quantized.onnx")


def run_quantize(request: QuantizeRequest) -> dict:
    """Check, load, quantize, (fine-tune,) write, run and time; the summary (with ``line``)."""
    from designer.pruning.run import load_subject
    from designer.quantization.fold import fold_batchnorm
    from designer.quantization.onnx_file import export_onnx
    from designer.quantization.quantize import quantize_model
    from designer.train.data import load_dataset
    from designer.train.loop import TrainConfig, evaluate, train
    request.check()
    subject = load_subject(request.checkpoint, request.model, request.weights, request.input_shape, request.dataset,
                           "cpu")  # ONNX Runtime's CPU kernels are the target; calibration runs beside them
    splits = load_dataset(subject.dataset, seed=subject.metadata.get("seed", 0))
    subject.check_fits(splits)
    model = subject.model.eval()
    example = subject.example_input
    float_model = copy.deepcopy(model)
    fold_batchnorm(float_model)
    calib = splits.train.tensors[0][:request.calibration]
    # quantize_model checks the budget against the cheapest options before it measures anything
    quantized = quantize_model(model, calib, request.budget, request.bits, request.rounding, request.with_sparsity,
                               progress=request.progress)
    before = evaluate(float_model, splits.test)["accuracy"]
    after = evaluate(model, splits.test)["accuracy"]
    tuned = None
    if request.qat_epochs:  # quantization-aware: the straight-through fake quantization trains as it is
        config = TrainConfig(epochs=request.qat_epochs, lr=0.005, warmup_epochs=0, amp="off",
                             seed=subject.metadata.get("seed", 0), progress=request.progress)
        train(model, splits.train, config)
        tuned = evaluate(model.eval(), splits.test)["accuracy"]
    size = export_onnx(model, quantized.plan, example, request.out)
    deployed = deployment(model, float_model, request.out, example, splits)
    report = quantized.report.to_dict()
    summary = {**report, "accuracy_float": before, "accuracy_quantized": after, "accuracy_qat": tuned,
               "onnx_bytes": size, **deployed, "output": str(request.out)}
    summary["line"] = _line(summary, request)
    return summary


def deployment(model, float_model, path: Path, example: torch.Tensor, splits) -> dict:
    """The ONNX file run by ONNX Runtime: its test accuracy, its largest difference from the torch
    module on a test batch, its latency at batch 1 and 32 beside the float file's (one thread)."""
    import os

    from designer.quantization.onnx_file import accuracy, export_onnx, latency, run_onnx, session
    runner = session(path)
    batch = splits.test.tensors[0][:64]
    with torch.no_grad():
        difference = float((run_onnx(runner, batch) - model.eval()(batch)).abs().max())
    top1 = accuracy(runner, splits.test)
    with tempfile.TemporaryDirectory() as folder:
        float_path = Path(folder) / "float.onnx"
        export_onnx(float_model, None, example, float_path)
        float_runner, float_size = session(float_path), os.path.getsize(float_path)
        times = {f"latency_{kind}_b{b}_s": latency(r, example, b)
                 for kind, r in (("int", runner), ("float", float_runner)) for b in (1, 32)}
    return {"accuracy_onnx": top1, "max_abs_difference": difference, "float_onnx_bytes": float_size, **times}


def _line(s: dict, request: QuantizeRequest) -> str:
    bits = sorted({layer["bits"] for layer in s["layers"]}, reverse=True)
    qat = f", after {request.qat_epochs} QAT epoch(s) {s['accuracy_qat']:.4f}" if s["accuracy_qat"] is not None else ""
    return (f"{s['rounding']}: {len(s['layers'])} layers at {'/'.join(map(str, bits))} bits (average "
            f"{s['average_bits']:.2f}), accuracy {s['accuracy_float']:.4f} float -> {s['accuracy_quantized']:.4f} "
            f"quantized{qat}; ONNX Runtime {s['accuracy_onnx']:.4f} (max |diff| from torch "
            f"{s['max_abs_difference']:.3g}); file {s['onnx_bytes']:,} B "
            f"({s['onnx_bytes'] / s['float_onnx_bytes']:.3f}x float), latency batch 32 "
            f"{1e3 * s['latency_int_b32_s']:.1f} ms ({s['latency_int_b32_s'] / s['latency_float_b32_s']:.2f}x "
            f"float), batch 1 {1e3 * s['latency_int_b1_s']:.2f} ms; written to {s['output']}")
