"""`mpdesign quantize`: mixed-precision quantization by the same DP, and an int8 ONNX file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from designer.cli.common import (checkpoint_argument, choice_option, console, fail, force_option, input_shape_option,
                                  model_option, parse_list, quiet_option, weights_option)

# listed here so that `--help` needs no torch import (tests/test_packaging.py checks them against designer.quantization)
ROUNDING_NAMES = ("gptq", "nearest")

app = typer.Typer()


@app.command()
def quantize(
    checkpoint: Optional[Path] = checkpoint_argument(),
    model_ref: Optional[str] = model_option(),
    weights: Optional[Path] = weights_option(),
    input_shape: Optional[str] = input_shape_option(),
    bits: str = typer.Option("8,6,4,3,2", help="The weight bit-widths a layer may take (comma-separated, 2-8); one "
                                               "width without a budget: uniform quantization."),
    bits_avg: Optional[float] = typer.Option(None, help="Budget: the weights' average bits (HAWQ-V3's model size)."),
    size: Optional[str] = typer.Option(None, help="Budget: bytes of the quantized layers in the ONNX file (codes, "
                                                  "scales, biases), e.g. 300kB."),
    bops: Optional[float] = typer.Option(None, help="Budget: bit operations (weight bits x 8 x MACs, summed)."),
    with_sparsity: Optional[str] = typer.Option(None, help="Also offer each layer these sparsities (e.g. 0.5): one DP "
                                                           "chooses bits and sparsity together (the file stays dense)."),
    rounding: str = choice_option("gptq", ROUNDING_NAMES, "gptq (reconstruction on each layer's calibration "
                                  "Hessian, never worse than nearest on a layer's output error) or nearest."),
    dataset: Optional[str] = typer.Option(None, help="Dataset for calibration, QAT and the accuracy figures: digits, "
                                                     "mnist5k, shapes, textures, an .npz or an image folder (default: "
                                                     "the checkpoint's)."),
    calibration: int = typer.Option(128, help="Calibration images (the first of the training split)."),
    qat_epochs: int = typer.Option(0, help="Quantization-aware fine-tuning epochs (the fake-quantized module "
                                           "trains with the straight-through estimator)."),
    out: Optional[Path] = typer.Option(None, help="The ONNX file (QDQ, runs in ONNX Runtime; default: next to the "
                                                  "checkpoint or --weights, NAME-quantized.onnx)."),
    as_json: bool = typer.Option(False, "--json"),
    threads: int = typer.Option(0, help="torch's threads (0: auto, the cores other processes leave free; "
                                        "OMP_NUM_THREADS, when set, wins)."),
    force: bool = force_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Quantize a trained network - an mpdesign checkpoint or your own module - with bit-widths per
    layer chosen by the knapsack DP under a budget; write an ONNX file ONNX Runtime runs in int8."""
    from designer.quantization.run import QuantizeRequest, run_quantize
    try:
        request = QuantizeRequest(
            checkpoint=checkpoint, model=model_ref, weights=weights, input_shape=input_shape,
            bits=tuple(parse_list(bits, "--bits", int)), bits_avg=bits_avg, size=size, bops=bops, rounding=rounding,
            with_sparsity=tuple(parse_list(with_sparsity, "--with-sparsity") or ()), dataset=dataset,
            calibration=calibration, qat_epochs=qat_epochs, out=out, force=force, progress=not (as_json or quiet))
        summary = run_quantize(request)  # every argument is checked before any measurement
    except ValueError as error:
        fail(str(error))
    line = summary.pop("line")
    from designer.schemas import FORMAT_VERSION
    if as_json:
        print(json.dumps({"format_version": FORMAT_VERSION, **summary}, indent=2))
    else:
        console.print(line)
