"""Quantization benchmark: bits chosen per layer by the DP against uniform widths, ONNX Runtime's
own static int8 quantizer and HAWQ-V3's Hessian-trace sensitivity under the same DP; every row's
accuracy is its ONNX file's, run by ONNX Runtime; then size and latency of the int8 file.

    python benchmarks/quantization.py --setting resnet18 --dataset textures --epochs 10 --seeds 0 1 2
    python benchmarks/quantization.py --setting unit-gamma      # the control (see benchmarks/pruning.py)
    python benchmarks/quantization.py --setting resnet18 --dataset textures --seeds --latency   # size and latency

The networks, datasets and training are the pruning benchmark's (``benchmark_model``); every
method quantizes the same trained network (BatchNorm folded) with the same 128 calibration
images; activations 8-bit per tensor everywhere. Rows: float32 (torch); ``ort static int8``
(``onnxruntime.quantization.quantize_static``, QDQ, per-channel int8 weights, uint8
activations, MinMax: its defaults); ours uniform at 8, 4 and 3 bits (nearest and GPTQ) and 2 bits (GPTQ); the
DP at average 6, 4, 3 and 2.5 bits (GPTQ rounding, distortions measured per layer and width); HAWQ-V3's
criterion with our DP at 4, 3 and 2.5 bits (sensitivity ``Tr(H_l)/n_l ||Q_b(W_l) - W_l||^2``, Hutchinson's
estimate of the loss Hessian's trace with 32 Rademacher probes, with GPTQ rounding as ours so
only the allocation differs; NNCF is not a row: NNCF 3.4 installs and imports with our torch
pin, but its one HAWQ criterion is in weight compression (``nncf.compress_weights``: weights at
INT4 for a ratio of the layers, INT8 for the rest, activations left float, so no average below
4 bits and no 8-bit activations), and its quantization-aware HAWQ (``create_compressed_model``)
is gone from NNCF 3); the DP at 3 bits plus one epoch of quantization-aware
fine-tuning. Sizes at equal average bits are equal by construction (the budget is counted on
the result: ``avg bits`` column).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from pruning import benchmark_model, log, spread

from designer.quantization import GPTQ, AverageBits, Nearest, quantize_model
from designer.quantization.curves import LayerOptions, option_curves
from designer.quantization.fold import fold_batchnorm
from designer.quantization.grid import weight_scales
from designer.quantization.onnx_file import accuracy, export_onnx, latency, payload_bytes, session
from designer.quantization.quantize import plan_table
from designer.train.data import load_dataset
from designer.train.loop import TrainConfig, evaluate, train

UNIFORM = [("uniform 8 nearest", 8, Nearest), ("uniform 8 gptq", 8, GPTQ), ("uniform 4 nearest", 4, Nearest),
           ("uniform 4 gptq", 4, GPTQ), ("uniform 3 nearest", 3, Nearest), ("uniform 3 gptq", 3, GPTQ),
           ("uniform 2 gptq", 2, GPTQ)]
AVERAGES = (6.0, 4.0, 3.0, 2.5)  # 2.5: below where uniform 3 bits is nearly free, the allocation has to choose


def onnx_accuracy(path: Path, split) -> float:
    return accuracy(session(path), split)


def ort_static(float_path: Path, calibration: torch.Tensor, out: Path) -> None:
    """ONNX Runtime's own static quantizer on the float file, with the same calibration images."""
    import logging
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process (shape inference) is logged at WARNING
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": calibration[i:i + 32].numpy()} for i in range(0, len(calibration), 32)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(float_path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def hessian_traces(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, names: list[str],
                   probes: int = 32, seed: int = 0) -> dict[str, float]:
    """Hutchinson: Tr(H_l) ~ mean over Rademacher v of v . (H v), H the loss Hessian of layer l's weights."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    generator = torch.Generator().manual_seed(seed)
    weights = [model.get_submodule(n).weight for n in names]
    with sdpa_kernel(SDPBackend.MATH):  # the fused CPU attention has no second derivative
        loss = torch.nn.functional.cross_entropy(model(images), labels)
    grads = torch.autograd.grad(loss, weights, create_graph=True)
    traces = {n: 0.0 for n in names}
    for _ in range(probes):
        vs = [torch.randint(0, 2, w.shape, generator=generator).float() * 2 - 1 for w in weights]
        hvs = torch.autograd.grad(grads, weights, grad_outputs=vs, retain_graph=True)
        for n, v, hv in zip(names, vs, hvs):
            traces[n] += float((v * hv).sum()) / probes
    return traces


def hawq_curves(model, calibration, labels, table: list[LayerOptions]) -> list[LayerOptions]:
    """HAWQ-V3's sensitivity per layer and width on the DP's table."""
    traces = hessian_traces(model, calibration, labels, [row.name for row in table])
    rows = []
    for row in table:
        w = model.get_submodule(row.name).weight.detach()
        values = []
        for b in row.bits:
            q = Nearest().round(w, weight_scales(w, b), b)
            values.append(traces[row.name] / w.numel() * float(((q - w) ** 2).sum()))
        rows.append(LayerOptions(row.name, row.weights, row.channels, row.macs, row.bits, row.sparsity, values))
    return rows


def deployed(model, plan, example, split, folder: Path, label: str) -> tuple[float, int]:
    path = folder / f"{label.replace(' ', '_')}.onnx"
    export_onnx(model, plan, example, path)
    return onnx_accuracy(path, split), payload_bytes(path, plan)


def run_seed(seed: int, args, folder: Path) -> dict:
    splits = load_dataset(args.dataset, seed=seed)
    torch.manual_seed(seed)
    model = benchmark_model(args.setting, splits)
    optimiser = dict(optimizer="adamw", lr=1e-3, weight_decay=0.05) if args.setting == "vit" else dict(lr=0.05)
    start = time.perf_counter()
    train(model, splits.train, TrainConfig(epochs=args.epochs, seed=seed, **optimiser))
    log(f"seed {seed}: trained in {time.perf_counter() - start:.0f} s")
    model.eval()
    fold_batchnorm(model)
    calibration, labels = splits.train.tensors[0][:args.calibration], splits.train.tensors[1][:args.calibration]
    example = calibration[:1]
    result = {"float": (evaluate(model, splits.test)["accuracy"], None, 32.0)}
    float_path = folder / "float.onnx"
    export_onnx(model, None, example, float_path)
    ort_static(float_path, calibration, folder / "ort.onnx")
    result["ort static int8"] = (onnx_accuracy(folder / "ort.onnx", splits.test), None, 8.0)
    for label, bits, rounding in UNIFORM:
        q = quantize_model(copy.deepcopy(model), calibration, bits=(bits,), rounding=rounding())
        result[label] = (*deployed(q.model, q.plan, example, splits.test, folder, label), q.report.average_bits)
    table = plan_table(model, example, AverageBits(8), (8, 6, 4, 3, 2), ())
    hawq = hawq_curves(model, calibration, labels, table)
    ours = option_curves(model, calibration, table, GPTQ()).layers  # measured once, for every average
    for average in AVERAGES:
        q = quantize_model(copy.deepcopy(model), calibration, budget=AverageBits(average), rounding=GPTQ(),
                           curves=ours)
        label = f"ours dp {average:g} bits"
        result[label] = (*deployed(q.model, q.plan, example, splits.test, folder, label), q.report.average_bits)
        if average == 3.0:
            config = TrainConfig(epochs=1, lr=0.005, warmup_epochs=0, amp="off", seed=seed)
            train(q.model, splits.train, config)
            q.model.eval()
            label = f"ours dp {average:g} bits + QAT 1 epoch"
            result[label] = (*deployed(q.model, q.plan, example, splits.test, folder, label), q.report.average_bits)
        if average <= 4:
            q = quantize_model(copy.deepcopy(model), calibration, budget=AverageBits(average), rounding=GPTQ(),
                               curves=hawq)
            label = f"hawq-v3 trace + dp {average:g} bits"
            result[label] = (*deployed(q.model, q.plan, example, splits.test, folder, label), q.report.average_bits)
    log(f"seed {seed}: " + ", ".join(f"{k} {v[0]:.3f}" for k, v in result.items()))
    return result


def latency_table(args, folder: Path) -> None:
    """ONNX Runtime, one thread: float32 file against ours at uniform 8 bits (GPTQ), the
    benchmark's network (trained weights do not change the time: drawn ones) and the CIFAR
    ResNet-18 at full width (widths 64-512)."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.models.cifar import CifarResNet
    splits = load_dataset(args.dataset, seed=0)
    nets = {args.setting: benchmark_model(args.setting, splits),
            "resnet18 full width": CifarResNet(num_classes=splits.num_classes, in_channels=splits.in_channels)}
    print("\n| network | file | bytes | batch 1 ms | batch 32 ms |\n|---|---|---|---|---|")
    for name, net in nets.items():
        net.eval()
        fold_batchnorm(net)
        calibration = splits.train.tensors[0][:args.calibration]
        example = calibration[:1]
        export_onnx(net, None, example, folder / "lat_float.onnx")
        q = quantize_model(net, calibration, bits=(8,), rounding=GPTQ())
        export_onnx(q.model, q.plan, example, folder / "lat_int8.onnx")
        figures = {}
        for kind in ("float", "int8"):
            runner = session(folder / f"lat_{kind}.onnx")
            figures[kind] = (os.path.getsize(folder / f"lat_{kind}.onnx"), latency(runner, example, 1, 50),
                             latency(runner, example, 32, 20))
        for kind, (size, b1, b32) in figures.items():
            base = figures["float"]
            ratio = ("", "", "") if kind == "float" else (f" ({size / base[0]:.3f}x)", f" ({b1 / base[1]:.2f}x)",
                                                          f" ({b32 / base[2]:.2f}x)")
            print(f"| {name} | {kind} | {size:,}{ratio[0]} | {1e3 * b1:.2f}{ratio[1]} | {1e3 * b32:.1f}{ratio[2]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--setting", default="zero-gamma", choices=["zero-gamma", "unit-gamma", "resnet18", "vit"])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--latency", action="store_true", help="also the size and latency table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        results = [run_seed(seed, args, Path(folder)) for seed in args.seeds]
        if results:
            accuracy_table(args, results)
        if args.latency:
            latency_table(args, Path(folder))


def accuracy_table(args, results: list[dict]) -> None:
    print(f"Setting {args.setting}, {args.dataset}, {args.epochs} epochs; test accuracy (%) of each file run by "
          f"ONNX Runtime (float: torch), mean ± std over seeds {args.seeds}\n")
    print("| method | accuracy | vs float | avg bits | quantized bytes |\n|---|---|---|---|---|")
    floats = [r["float"][0] for r in results]
    for label in results[0]:
        values = [r[label][0] for r in results]
        delta = statistics.mean(v - f for v, f in zip(values, floats))
        size = results[0][label][1]
        print(f"| {label} | {spread(values)} | {100 * delta:+.1f} | {results[0][label][2]:.2f} | "
              f"{'' if size is None else f'{size:,}'} |")

if __name__ == "__main__":
    main()
