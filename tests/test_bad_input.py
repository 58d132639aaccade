"""Every bad input is one clear error before any work starts (issue 11).

A table of command lines, each with something wrong. For each: exit code 2, exactly one line on
stderr and it starts with ``error:``, no traceback, the line names what was wrong, existing
outputs are untouched, no new file appears, and the error comes fast (no solve, training or
pruning started). The commands run in-process through ``designer.cli.main``, the console
script's own entry point, so typer's usage errors are covered as users see them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from designer.checkpoint import save_checkpoint
from designer.cli import main
from designer.network import build
from designer.spec import NetworkSpec

SENTINEL = "existing output: must survive a failed command\n"
DIGITS_SPEC = {"resolution": 8, "in_channels": 1, "num_classes": 10, "stem": {"out": 8, "k": 3, "stride": 1},
               "stages": [{"family": "bottleneck", "out": 16, "btn": 8, "k": 3, "L": 1, "stride": 2}]}
GRAPH = {"name": "g", "tensors": {"x": {"bytes": 100, "producer": None}, "a": {"bytes": 200, "producer": "op_a"},
                                  "b": {"bytes": 300, "producer": "op_b"}},
         "operators": {"op_a": {"inputs": ["x"], "outputs": ["a"]}, "op_b": {"inputs": ["a"], "outputs": ["b"]}}}
CURVE = {"name": "conv", "weights": 100, "macs": 1000, "sparsity": [0.0, 0.5, 1.0], "distortion": [0.0, 0.1, 1.0]}
DESIGN_SWEEP = {"kind": "design", "time_limit": 5, "base": {"resolution": 32, "num_classes": 10, "max_params": 2e5},
                "grid": {"max_macs": [5e6]}}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The inputs the table refers to, made here: nothing comes from outside the test."""
    root = tmp_path_factory.mktemp("inputs")
    f = {"root": root, "cifar": Path(__file__).parent / "models" / "cifar.py",
         "unusable": Path(__file__).parent / "models" / "unusable.py"}

    def write(name: str, content) -> Path:
        path = root / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
        f[name] = path
        return path

    write("existing.json", SENTINEL)
    write("existing.png", SENTINEL)
    write("existing.pt", SENTINEL)
    write("spec.json", DIGITS_SPEC)
    write("no-stages.json", {"resolution": 32, "stem": {"out": 8}})
    write("bad-depth.json", {**DIGITS_SPEC, "stages": [{**DIGITS_SPEC["stages"][0], "L": 0}]})
    write("binary.bin", bytes(range(256)) * 4)
    write("text.txt", "hello, not a checkpoint\n")
    write("random.pt", np.random.default_rng(0).bytes(4096))
    write("graph.json", GRAPH)
    write("graph-dup.json", '{"name": "g", "tensors": {"x": {"bytes": 1, "producer": null}, '
                            '"x": {"bytes": 2, "producer": null}}, "operators": {}}')
    write("graph-string-size.json", {**GRAPH, "tensors": {**GRAPH["tensors"], "x": {"bytes": "100", "producer": None}}})
    write("graph-huge.json", {**GRAPH, "tensors": {**GRAPH["tensors"], "x": {"bytes": 1e30, "producer": None}}})
    write("graph-nan.json", json.dumps(GRAPH).replace('"bytes": 100', '"bytes": NaN'))
    write("graph-list.json", [1, 2, 3])
    write("curves.json", {"layers": [CURVE]})
    write("profile.json", {"coefficients": {k: [1e-8, 1e-7, 0.01] for k in ("pointwise", "spatial", "depthwise",
                                                                          "linear")},
                           "device": "synthetic", "torch_version": "", "precision": "fp32", "batch": 1,
                           "bytes_per_element": 4})
    write("curves-nan.json", json.dumps({"layers": [CURVE]}).replace("0.1", "NaN"))
    write("curves-unsorted.json", {"layers": [{**CURVE, "sparsity": [0.0, 1.0, 0.5]}]})
    write("curves-duplicate.json", {"layers": [CURVE, CURVE]})
    write("curves-range.json", {"layers": [{**CURVE, "sparsity": [0.0, 0.5, 1.5]}]})
    write("curves-negative.json", {"layers": [{**CURVE, "distortion": [0.0, -0.1, 1.0]}]})
    write("sweep-list.json", [DESIGN_SWEEP])
    write("sweep.json", DESIGN_SWEEP)
    write("sweep-bad-point.json", {**DESIGN_SWEEP, "grid": {"max_macs": ["abc"]}})
    write("sweep-inf.json", {**DESIGN_SWEEP, "time_limit": 1e400})  # written as Infinity
    write("sweep-zero.json", {**DESIGN_SWEEP, "time_limit": 0})
    write("sweep-map-bad-pad.json", {"kind": "mapping", "base": {"graph": str(root / "graph.json")},
                                     "grid": {"scratchpad": ["lots"]}})
    profile = json.loads((root / "profile.json").read_text())
    write("profile-batch.json", {**profile, "batch": -1})
    write("profile-extra.json", {**profile, "colour": "blue"})
    write("profile-missing.json", {k: v for k, v in profile.items() if k != "batch"})
    write("profile-string-batch.json", {**profile, "batch": "1"})
    write("ansi-name.json", {**DIGITS_SPEC, "name": "\x1b[31mred\x1b[0m"})
    write("deep.json", "[" * 100000 + "]" * 100000)
    write("sweep-repeat.json", {**DESIGN_SWEEP, "grid": {"max_macs": [5e6, 5e6]}})
    os.mkfifo(root / "pipe.json")
    f["pipe.json"] = root / "pipe.json"
    np.savez(root / "five.npz", x=np.zeros((5, 1, 8, 8), np.float32), y=np.array([0, 1, 0, 1, 0]))
    f["five.npz"] = root / "five.npz"
    np.savez(root / "negative-labels.npz", x=np.zeros((10, 1, 8, 8), np.float32), y=np.array([-1, 0] * 5))
    f["negative-labels.npz"] = root / "negative-labels.npz"
    np.savez(root / "one-class.npz", x=np.zeros((10, 1, 8, 8), np.float32), y=np.zeros(10, int))
    f["one-class.npz"] = root / "one-class.npz"
    np.savez(root / "nan-images.npz", x=np.full((10, 1, 8, 8), np.nan, np.float32), y=np.array([0, 1] * 5))
    f["nan-images.npz"] = root / "nan-images.npz"

    torch.manual_seed(0)
    digits = build(NetworkSpec.from_dict(DIGITS_SPEC))
    save_checkpoint(digits, root / "digits.pt", dataset="digits", seed=0)
    f["digits.pt"] = root / "digits.pt"
    rgb = build(NetworkSpec.from_dict({**DIGITS_SPEC, "in_channels": 3, "resolution": 16}))
    save_checkpoint(rgb, root / "rgb.pt", dataset="digits", seed=0)
    f["rgb.pt"] = root / "rgb.pt"
    wider = {**DIGITS_SPEC, "stem": {"out": 16, "k": 3, "stride": 1}}
    state = build(NetworkSpec.from_dict(wider)).state_dict()
    torch.save({"spec": DIGITS_SPEC, "state_dict": state, "metadata": {}}, root / "mismatch.pt")
    f["mismatch.pt"] = root / "mismatch.pt"
    torch.save({"weights": [1, 2, 3]}, root / "not-ours.pt")
    f["not-ours.pt"] = root / "not-ours.pt"
    return f


# (command line with {placeholders} for the files above, words the error line must contain)
CASES = [
    # ---- issue 22: budgets proven infeasible by arithmetic, limits of the machine, inputs -----------
    ("design --macs 1e3 --params 1e3 --time-limit 5", "--macs: the MACs budget 1000 cannot be met: the smallest MACs"),
    ("design --macs 1e3 --params 1e3 --time-limit 5", "; --params: the params budget 1000 cannot be met"),
    ("design --macs 1e5 --params 1e6 --time-limit 5", "smallest MACs any design in the space can have is 11,779,136"),
    ("design --macs 4e9 --threads 1000", "--threads: must be at most"),
    ("design --macs 4e9 --widths 16,100000000", "--widths: at most 16384"),
    ("design --macs 4e9 --depths 1,100000", "--depths: at most 64"),
    ("design --macs 4e9 --depths 2,4 --first-stage-max-depth 1", "--first-stage-max-depth: 1 is below the smallest"),
    ("design --macs 4e9 --out {root}/no-such-folder/design.json", "the folder {root}/no-such-folder does not exist"),
    ("design --macs 4e9 --latency-ms 3 --profile {profile-batch.json}", "profile: batch: input should be greater than or equal to 1, got -1"),
    ("design --macs 4e9 --latency-ms 3 --profile {profile-extra.json}", "profile: colour: unknown field"),
    ("design --macs 4e9 --latency-ms 3 --profile {profile-missing.json}", "profile lacks batch"),
    ("design --macs 4e9 --latency-ms 3 --profile {profile-string-batch.json}", "profile: batch: input should be a valid integer, got '1'"),
    ("inspect {ansi-name.json}", "name: must be printable text"),
    ("inspect {pipe.json}", "not a regular file"),
    ("map {pipe.json}", "not a regular file"),
    ("map {deep.json}", "nested too deeply"),
    ("map {graph.json} --plot {root}/layout.gif", "--plot: {root}/layout.gif: the suffix names the picture's format"),
    ("map --model {unusable}:two_inputs --input-shape 1,3,8,8", "forward takes 2 inputs (x, y)"),
    ("map --model {unusable}:embedding --input-shape 1,3,8,8", "integer inputs such as token ids"),
    ("map --model {unusable}:dict_output --input-shape 1,3,8,8", "forward returned dict"),
    ("map --model {unusable}:data_dependent --input-shape 1,3,8,8", "cannot capture DataDependent"),
    ("map --model {cifar}:small_residual --input-shape 1,3,200000,200000", "more than a quarter of this machine"),
    ("prune --model {unusable}:no_layers --input-shape 1,3,32,32 --dataset shapes --sparsity 0.5",
     "has no Conv or Linear layer"),
    ("sweep {sweep-repeat.json}", "grid: max_macs lists 5000000.0 twice"),
    ("sweep {sweep.json} --grid max_macs=1e6 --grid max_macs=2e6", "--grid: max_macs given twice"),
    ("sweep {sweep.json} --plot {root}/front.gif", "the suffix names the picture's format"),
    ("train tiny-cifar --seed 99999999999", "--seed: must be at most"),
    ("train tiny-cifar --dataset digits --resolution 16", "--resolution: applies to image folders only"),
    ("train tiny-cifar --dataset {five.npz}", "has 5 samples; a 70/15/15 split needs at least 20"),
    ("pipeline --out {root}", "--out: {root} already holds files"),
    # ---- inspect ---------------------------------------------------------------------------
    ("inspect {binary.bin}", "binary file"),
    ("inspect {no-stages.json}", "stages: missing"),
    ("inspect {bad-depth.json}", "stages[0].L: must be a positive integer"),
    ("inspect no-such-net", "built-in spec"),
    ("inspect tiny-cifar --alpha 1,1", "got 2 stage weights for 3"),
    ("inspect tiny-cifar --alpha 1,nan,8", "--alpha"),
    ("inspect tiny-cifar --alpha 1,-1,8", "alpha: stage weights must be finite, non-negative"),
    ("inspect tiny-cifar --alpha a,b,c", "--alpha: expected comma-separated"),
    ("inspect tiny-cifar --bytes-per-element 0", "--bytes-per-element: must be at least 1"),
    ("inspect tiny-cifar --bytes-per-element -2", "--bytes-per-element"),
    ("inspect tiny-cifar --resolution 0", "--resolution: must be at least 1"),
    ("inspect tiny-cifar --classes 0", "--classes"),
    ("inspect tiny-cifar --no-such-option", "No such option"),
    # ---- design ----------------------------------------------------------------------------
    ("design --time-limit 5", "give --macs or --params"),
    ("design --macs 4e9 --time-limit 0", "--time-limit: must be greater than 0"),
    ("design --macs 4e9 --time-limit -5", "--time-limit"),
    ("design --macs 4e9 --time-limit nan", "--time-limit: must be a finite number"),
    ("design --macs inf --params 2e7", "--macs: must be a positive finite number"),
    ("design --macs -1", "--macs: must be a positive finite number"),
    ("design --macs 4e9 --params nan", "--params"),
    ("design --macs 4e9 --gap -1", "--gap: must be in [0, 1)"),
    ("design --macs 4e9 --gap 1.5", "--gap"),
    ("design --macs 4e9 --alpha 1,1,1,1,nan", "--alpha: expected finite numbers"),
    ("design --macs 4e9 --alpha 1,1,1,1,-8", "--alpha: stage weights must be finite, non-negative"),
    ("design --macs 4e9 --alpha 1,1", "got 2 stage weights for 5"),
    ("design --macs 4e9 --max-activation-bytes 1e6 --bytes-per-element 0",
     "--bytes-per-element: must be a positive integer"),
    ("design --macs 4e9 --bytes-per-element 4", "--bytes-per-element: applies only with --max-activation-bytes"),
    ("design --macs 4e9 --bytes-per-element -1", "--bytes-per-element"),
    ("design --macs 4e9 --params 25e6 --max-activation-bytes 1", "--max-activation-bytes: 1 is below the stem"),
    ("design --macs 4e9 --max-activation-bytes -5", "--max-activation-bytes: must be a positive size in bytes"),
    ("design --macs 4e9 --family dense", "--family: must be one of"),
    ("design --macs 4e9 --method fastest", "--method: must be one of auto, exact, refine"),
    ("design --macs 4e9 --objective entropy", "--objective: must be one of score, penalised"),
    ("design --macs 4e9 --counting flops", "--counting: must be one of mpdesign, tinynas"),
    ("design --macs 4e8 --family inverted --counting tinynas", "--counting: 'tinynas' is defined for the bottleneck and basic"),
    ("design --macs 4e9 --depths 1,2,3", "--depths: give LO,HI"),
    ("design --macs 4e9 --stem-widths 64,8", "--stem-widths: lower bound 64 exceeds upper bound 8"),
    ("design --macs 4e9 --first-stage-max-depth -1", "--first-stage-max-depth: must be at least 0"),
    ("design --macs 4e9 --threads 0", "--threads: must be at least 1"),
    ("design --macs 4e9 --strides 2,3", "--strides"),
    ("design --macs 4e9 --strides x", "--strides: expected comma-separated ints"),
    ("design --macs 4e9 --effectiveness 0", "--effectiveness: must be a positive finite number"),
    ("design --macs 4e9 --effectiveness 0.001", "--effectiveness: the stem alone has rho"),
    ("design --macs 4e9 --resolution 0", "--resolution: must be a positive integer"),
    ("design --macs 4e9 --classes -3", "--classes"),
    ("design --macs 4e9 --max-depth-spread -1", "--max-depth-spread"),
    ("design --macs 4e9 --time-limit abc", "Invalid value for '--time-limit'"),
    ("design --macs 4e9 --out {existing.json}/design.json", "--out: cannot write"),
    ("design --macs 4e9 --out {root}", "--out: " + "{root} is a folder"),
    ("design --macs 4e9 --latency-ms 3", "--latency-ms and --profile go together"),
    ("design --macs 4e9 --latency-ms 3 --profile {curves.json}", "profile: expected an object with 'coefficients'"),
    ("design --macs 4e9 --latency-ms -3 --profile {profile.json}", "--latency-ms: must be a positive finite"),
    ("profile --precision fp8", "--precision: must be one of fp32, bf16, fp16"),
    ("profile --batch 0", "--batch: must be at least 1"),
    ("profile --networks -1", "--networks: must be at least 0"),
    ("profile --networks 4 --resolution 8", "--resolution: must be at least 16"),
    ("profile --out {existing.json}/p.json", "--out: cannot write"),
    # ---- map -------------------------------------------------------------------------------
    ("map {missing.json}", "no such file"),
    ("map {graph.json} --time-limit -1", "--time-limit: must be greater than 0"),
    ("map {graph.json} --time-limit 0", "--time-limit"),
    ("map {graph.json} --max-reloads -1", "--max-reloads: must be at least 0"),
    ("map {graph.json} --bytes-per-element 0", "--bytes-per-element: must be at least 1"),
    ("map {graph.json} --bytes-per-element -4", "--bytes-per-element"),
    ("map {graph.json} --scratchpad abc", "scratchpad: a size such as 262144, 256kB, 256KiB or 1.5MB; got 'abc' (or M_R, M_H, M_P)"),
    ("map {graph.json} --scratchpad -100", "scratchpad: must be a positive size in bytes"),
    ("map {graph.json} --scratchpad 12.5", "scratchpad: '12.5' is not a whole number of bytes"),
    ("map {graph.json} --scratchpad 10", "is below M_R"),
    ("map {graph.json} --strategy sideways", "'sideways' is not one of 'cpsat', 'ilp'"),
    ("map {graph.json} --objective energy", "Invalid value for '--objective'"),
    ("map {graph.json} --strategy divide --order given", "--strategy: divide chooses its own order"),
    ("map {graph.json} --strategy ilp --objective dram", "--strategy: ilp models inputs and weights as re-read"),
    ("map {graph.json} --mode fixed", "--mode: replaced by --strategy divide or --order given"),
    ("map {graph.json} --solver ilp", "--solver: replaced by --strategy ilp or cpsat"),
    ("map {graph.json} --out {existing.json}/m.json", "--out: cannot write"),
    ("map {graph.json} --plot {existing.png}/p.png", "--plot: cannot write"),
    ("map {graph-dup.json}", "the key 'x' appears twice"),
    ("map {graph-string-size.json}", "size must be a positive whole number of bytes, got '100'"),
    ("map {graph-huge.json}", "more than the largest size supported"),
    ("map {graph-nan.json}", "NaN is not a number JSON allows"),
    ("map {graph-list.json}", "expected a JSON object"),
    ("map {binary.bin}", "binary file"),
    ("map {random.pt}", "not a checkpoint torch can read"),
    ("map", "give a graph file or --model"),
    ("inspect --model {cifar}:small_residual", "--input-shape: needed with --model"),
    ("inspect resnet18 --model {cifar}:small_residual --input-shape 1,8,8", "give a spec or --model"),
    ("inspect --model {cifar}:small_residual --input-shape 1,8,8 --depth -1", "--depth: must be at least 0"),
    ("map {graph.json} --model {cifar}:small_residual --input-shape 1,1,8,8", "give a graph file or --model"),
    ("map --model {cifar}:small_residual", "--input-shape: needed with --model"),
    ("map --model {cifar}:missing --input-shape 1,1,8,8", "has no callable 'missing'"),
    ("map --model {cifar}:small_residual --input-shape 1,x", "--input-shape: expected comma-separated"),
    ("map {text.txt}.pt2", "no such file"),
    ("map {graph.json} --save-graph {existing.json}/g.json", "--save-graph: cannot write"),
    ("map {graph.json} --training", "--training: needs a model"),
    # ---- quantize --------------------------------------------------------------------------
    ("quantize {digits.pt} --bits 1 --out {root}/q.onnx", "--bits: a weight bit-width is one of 8, 6, 4, 3, 2, got 1"),
    ("quantize {digits.pt} --bits 4,9 --bits-avg 4 --out {root}/q.onnx", "got 9"),
    ("quantize {digits.pt} --out {root}/q.onnx", "give a budget (--bits-avg, --size or --bops)"),
    ("quantize {digits.pt} --bits-avg 1 --out {root}/q.onnx", "--bits-avg: 1 is below the fewest bits offered, 2"),
    ("quantize {digits.pt} --size 10 --out {root}/q.onnx", "--size: 10 bytes is below the smallest the options reach"),
    ("quantize {digits.pt} --bops 0 --out {root}/q.onnx", "--bops: must be a positive number"),
    ("quantize {digits.pt} --bits 8 --out {root}/q.pt", "--out: the quantized network is written as ONNX"),
    ("quantize {digits.pt} --bits 8 --rounding round --out {root}/q.onnx", "--rounding: must be one of gptq, nearest"),
    ("quantize --model {unusable}:no_layers --input-shape 1,3,32,32 --dataset shapes --bits 8 --out {root}/q.onnx",
     "has no Conv or Linear layer"),
    # ---- prune -----------------------------------------------------------------------------
    ("prune {digits.pt} --sparsity 2", "--sparsity: must be in [0, 1)"),
    ("prune {digits.pt} --sparsity 1", "--sparsity"),
    ("prune {digits.pt} --sparsity -0.1", "--sparsity"),
    ("prune {digits.pt} --sparsity nan", "--sparsity: must be a finite number"),
    ("prune {digits.pt}", "give exactly one of --sparsity"),
    ("prune {digits.pt} --sparsity 0.5 --keep-macs 0.5", "give exactly one of --sparsity"),
    ("prune {digits.pt} --keep-macs 0", "--keep-macs: must be in (0, 1]"),
    ("prune {digits.pt} --keep-macs 0.5 --method lamp", "only the rd methods"),
    ("prune {digits.pt} --sparsity 0.5 --method best", "--method: must be one of"),
    ("prune {digits.pt} --sparsity 0.5 --mode filters", "--mode: must be one of weights, channels"),
    ("prune {digits.pt} --sparsity 0.5 --schedule gradual", "--schedule"),
    ("prune {digits.pt} --sparsity 0.5 --criterion gradient", "--criterion: must be one of magnitude"),
    ("prune {digits.pt} --sparsity 0.5 --grid 1", "--grid: must be at least 2"),
    ("prune {digits.pt} --sparsity 0.5 --calibration 0", "--calibration: must be at least 1"),
    ("prune {digits.pt} --sparsity 0.5 --finetune-epochs -1", "--finetune-epochs"),
    ("prune {digits.pt} --sparsity 0.5 --out {existing.json}/p.pt", "--out: cannot write"),
    ("prune {random.pt} --sparsity 0.5", "not a checkpoint torch can read"),
    ("prune {text.txt} --sparsity 0.5", "not a checkpoint torch can read"),
    ("prune {not-ours.pt} --sparsity 0.5", "not an mpdesign checkpoint"),
    ("prune {mismatch.pt} --sparsity 0.5", "the weights do not match the checkpoint's spec"),
    ("prune {rgb.pt} --sparsity 0.5", "--dataset: digits has 1x8x8 images"),
    ("prune {missing.pt} --sparsity 0.5", "no such checkpoint"),
    ("prune --sparsity 0.5 --dataset digits", "give a checkpoint or --model"),
    ("prune {digits.pt} --model {cifar}:small_residual --sparsity 0.5", "give a checkpoint or --model"),
    ("prune --model nowhere.py:f --input-shape 1,1,8,8 --dataset digits --sparsity 0.5", "--model: nowhere.py: no such"),
    ("prune --model {cifar}:nothing --input-shape 1,1,8,8 --dataset digits --sparsity 0.5",
     "has no callable 'nothing'"),
    ("prune --model {cifar} --input-shape 1,1,8,8 --dataset digits --sparsity 0.5",
     "expected PATH.py:FACTORY"),
    ("prune --model {cifar}:small_residual --dataset digits --sparsity 0.5", "--input-shape: needed"),
    ("prune --model {cifar}:small_residual --input-shape 1,a --dataset digits --sparsity 0.5",
     "--input-shape: expected comma-separated"),
    ("prune --model {cifar}:small_residual --input-shape 1,1,8,8 --sparsity 0.5", "--dataset: needed"),
    ("prune --model {cifar}:small_residual --input-shape 1,3,32,32 --dataset digits --sparsity 0.5",
     "--dataset: digits has 1x8x8 images, --input-shape says 3x32x32"),
    ("prune --model {cifar}:resnet18 --weights {digits.pt} --input-shape 1,3,32,32 --dataset shapes "
     "--sparsity 0.5", "--weights"),
    # ---- allocate --------------------------------------------------------------------------
    ("allocate {missing.json} --sparsity 0.5", "no such file"),
    ("allocate {curves.json} --sparsity nan", "--sparsity: must be a finite number"),
    ("allocate {curves.json} --sparsity -5", "--sparsity: must be in [0, 1)"),
    ("allocate {curves.json} --keep-weights 100", "--keep-weights: replaced by --sparsity"),
    ("allocate {curves.json}", "give exactly one of --sparsity (fraction of weights removed) and --keep-macs"),
    ("allocate {curves.json} --sparsity 0.5 --method greedy", "--method: must be one of dp, slope"),
    ("allocate {curves.json} --sparsity 0.5 --bins -1", "--bins: must be at least 0"),
    ("allocate {curves-nan.json} --sparsity 0.5", "NaN is not a number JSON allows"),
    ("allocate {curves-unsorted.json} --sparsity 0.5", "the grid must be in increasing order"),
    ("allocate {curves-duplicate.json} --sparsity 0.5", "'conv' appears twice"),
    ("allocate {curves-range.json} --sparsity 0.5", "every value must be in [0, 1]"),
    ("allocate {curves-negative.json} --sparsity 0.5", "cannot be negative"),
    ("allocate {binary.bin} --sparsity 0.5", "binary file"),
    # ---- train -----------------------------------------------------------------------------
    ("train {spec.json} --weight-decay -1", "--weight-decay: must be at least 0"),
    ("train {spec.json} --lr 0", "--lr: must be greater than 0"),
    ("train {spec.json} --lr nan", "--lr"),
    ("train {spec.json} --epochs 0", "--epochs: must be at least 1"),
    ("train {spec.json} --batch-size 0", "--batch-size"),
    ("train {spec.json} --optimizer adam", "optimizer: must be one of sgd, adamw"),
    ("train {spec.json} --device tpu", "--device: must be auto, cpu or cuda"),
    ("train {spec.json} --amp maybe", "amp: must be auto, on or off"),
    ("train {spec.json} --resident sometimes", "resident: must be auto, on or off"),
    ("train {spec.json} --device cuda", "device: cuda was asked for but torch sees no CUDA device"),
    ("prune {digits.pt} --sparsity 0.5 --device tpu", "--device: must be auto, cpu or cuda"),
    ("pipeline --device tpu --out {root}/run-g", "--device: must be auto, cpu or cuda"),
    ("train {spec.json} --dataset {negative-labels.npz}", "labels must be class numbers"),
    ("train {spec.json} --dataset {one-class.npz}", "one class only"),
    ("train {spec.json} --dataset {nan-images.npz}", "NaN or infinite"),
    ("train {spec.json} --dataset imagenet", "neither a built-in dataset"),
    ("train {spec.json} --out {existing.json}", "--out: " + "{existing.json} is a file"),
    ("train {binary.bin}", "binary file"),
    # ---- sweep -----------------------------------------------------------------------------
    ("sweep {sweep-list.json}", "sweep: expected a JSON object"),
    ("sweep {sweep-bad-point.json}", "max_macs: must be a positive finite number"),
    ("sweep {sweep.json} --grid max_macs=abc", "max_macs"),
    ("sweep {sweep.json} --grid max_macs=NaN", "--grid: 'NaN' is not a finite number"),
    ("sweep {sweep.json} --grid nothing", "--grid: expected FIELD=v1,v2"),
    ("sweep {sweep-inf.json}", "Infinity is not a number JSON allows"),
    ("sweep {sweep-zero.json}", "time_limit: must be greater than 0"),
    ("sweep {sweep-map-bad-pad.json}", "scratchpad: a size such as"),
    ("sweep {sweep.json} --workers 0", "--workers: must be at least 1"),
    ("sweep {sweep.json} --time-limit -3", "--time-limit"),
    ("sweep {sweep.json} --scheduler nowhere", "--scheduler: expected serial, local or an address"),
    ("sweep {sweep.json} --out {existing.json}/r.json", "--out: cannot write"),
    ("sweep {missing.json}", "no such file"),
    # ---- pipeline --------------------------------------------------------------------------
    ("pipeline --scratchpad abc --out {root}/run-a", "--scratchpad: a size such as"),
    ("pipeline --sparsity 2 --out {root}/run-b", "--sparsity: must be in [0, 1)"),
    ("pipeline --macs -1 --out {root}/run-c", "--macs: must be greater than 0"),
    ("pipeline --epochs 0 --out {root}/run-d", "--epochs: must be at least 1"),
    ("pipeline --dataset nowhere.npz --out {root}/run-e", "neither a built-in dataset"),
    ("pipeline --out {existing.json}", "--out: " + "{existing.json} is a file"),
    ("pipeline --macs 10 --out {root}/run-f", "MACs budget 10 cannot be met"),
    ("pipeline --device cuda --out {root}/run-h", "--device: cuda was asked for"),
]


def fill(template: str, files: dict[str, Path]) -> str:
    out = template
    for name, path in files.items():
        out = out.replace("{" + name + "}", str(path))
    return out.replace("{missing.json}", str(files["root"] / "missing.json")).replace(
        "{missing.pt}", str(files["root"] / "missing.pt"))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command, words", CASES, ids=[c for c, _ in CASES])
def test_bad_input_is_one_clear_error_before_any_work(command, words, files, capsys, monkeypatch, tmp_path):
    if "--device cuda" in command and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: asking for it is no error here")
    monkeypatch.chdir(tmp_path)  # anything a command wrote by mistake would land here or in files["root"]
    before = snapshot(files["root"])
    argv = fill(command, files).split()
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    seconds = time.perf_counter() - start
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert exit_info.value.code == 2, captured.err + captured.out
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert fill(words, files) in lines[0], lines[0]
    assert snapshot(files["root"]) == before  # existing outputs untouched, nothing new written
    assert not any(tmp_path.iterdir())
    # refused before any solve, training or pruning: loading a dataset or a checkpoint is the
    # most these commands may do first (generous for a slow CI machine)
    assert seconds < 30, f"{seconds:.1f} s before the error"


def test_the_table_is_large_and_covers_every_command():
    commands = {c.split()[0] for c, _ in CASES}
    assert commands == {"inspect", "design", "map", "prune", "quantize", "allocate", "train", "sweep", "pipeline",
                        "profile"}
    assert len(CASES) >= 60


def test_ctrl_c_says_interrupted_and_exits_130(monkeypatch, capsys, tmp_path):
    import designer.cli.design as design_cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(design_cli, "solve_design", interrupted)
    out = tmp_path / "design.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["design", "--macs", "4e9", "--out", str(out)])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: interrupted (Ctrl-C)")
    assert not out.exists()


def test_a_real_ctrl_c_in_the_solver_exits_130_and_writes_nothing(tmp_path):
    """HiGHS catches SIGINT itself and returns "interrupted": that must not become a design."""
    import signal
    import subprocess
    import sys
    out = tmp_path / "design.json"
    process = subprocess.Popen([sys.executable, "-m", "designer.cli", "design", "--macs", "4.04e9", "--params",
                                "25.4e6", "--time-limit", "300", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    first = process.stderr.readline()  # "designing ...": the arguments are checked, the solve starts
    time.sleep(3)  # into the constructive start or the first MILP
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    err = first + err
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()


def test_a_diverging_loss_stops_training_and_saves_nothing(files, capsys, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(files["spec.json"]), "--epochs", "1", "--lr", "1e30", "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert "training diverged: the loss is nan" in err and "no checkpoint written" in err
    assert not (out / "checkpoint.pt").exists()


def test_design_returns_a_design_even_with_a_two_second_limit(capsys, tmp_path):
    out = tmp_path / "design.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["design", "--macs", "4.04e9", "--params", "25.4e6", "--effectiveness", "0.3", "--time-limit", "2",
              "--out", str(out), "--json"])
    assert exit_info.value.code == 0
    result = json.loads(capsys.readouterr().out)
    spec = NetworkSpec.load(out)
    assert result["spec"] == spec.to_dict() and result["status"] in ("feasible", "optimal")
    from designer.design.problem import DesignProblem
    problem = DesignProblem.from_dict(result["problem"])
    assert problem.violations(spec) == []  # the recount meets every budget
