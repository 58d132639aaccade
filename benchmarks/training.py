"""Training benchmark: our designed networks against a hand-designed ResNet of equal MACs.

For each dataset and MACs budget: the design MILP (the pipeline's problem: stem stride 1,
stages halving the resolution, params budget ``--params-per-mac`` x MACs) against a scaled
ResNet of our own spec (basic blocks, widths w, 2w, 4w, two blocks per stage, w the largest
width whose MACs fit the same budget), both trained with the same recipe (SGD Nesterov,
warm-up + cosine, label smoothing, shift augmentation, ``--epochs``). Columns: test accuracy
(mean and spread over ``--seeds``), params, MACs, CPU training throughput (training images per
second over the whole run, one process).

    python benchmarks/training.py                          # mnist5k and shapes, 3 budgets each
    python benchmarks/training.py --datasets shapes --epochs 5 --seeds 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

import torch

from designer.costs import count
from designer.design import solve
from designer.network import build
from designer.pipeline import PipelineConfig, pipeline_problem
from designer.spec import NetworkSpec, Stage, Stem
from designer.train.data import load_dataset
from designer.train.loop import TrainConfig, evaluate, train

BUDGETS = {"mnist5k": [2e6, 6e6, 1.8e7], "shapes": [2e6, 6e6, 1.8e7]}


def resnet_spec(splits, width: int, depth: int = 2, stem_stride: int = 1, name: str | None = None) -> NetworkSpec:
    """A ResNet of our own spec for ``splits``: basic blocks, widths w, 2w, 4w, ``depth`` per stage."""
    return NetworkSpec(name=name or f"resnet-w{width}-L{depth}-s{stem_stride}", resolution=splits.resolution,
                       in_channels=splits.in_channels, num_classes=splits.num_classes,
                       stem=Stem(out=width, k=3, stride=stem_stride),
                       stages=[Stage("basic", out=m * width, btn=m * width, k=3, L=depth, stride=s)
                               for m, s in ((1, 1), (2, 2), (4, 2))])


def scaled_resnet(splits, max_macs: float) -> NetworkSpec:
    """The widest ResNet (w, 2w, 4w; two basic blocks per stage) within ``max_macs``."""
    def spec(width: int) -> NetworkSpec:
        return resnet_spec(splits, width, name=f"resnet-w{width}")
    width = 4
    while count(spec(width + 1)).macs <= max_macs:
        width += 1
    if count(spec(width)).macs > max_macs:
        raise ValueError(f"no scaled ResNet fits {max_macs:g} MACs")
    return spec(width)


def designed(splits, max_macs: float, params_per_mac: float, seconds: float) -> tuple[NetworkSpec, dict]:
    config = PipelineConfig(macs=max_macs, params=params_per_mac * max_macs, design_seconds=seconds)
    # wider stages than the pipeline's default space; replace() validates the changed problem
    problem = replace(pipeline_problem(config, splits.resolution, splits.in_channels, splits.num_classes),
                      out_widths=(8, 512))
    result = solve(problem, time_limit=seconds)
    if result.spec is None:
        raise RuntimeError(f"no design within {max_macs:g} MACs: {result.solve.message}")
    return result.spec, {"status": result.status, "gap": result.solve.gap}


def fit(spec: NetworkSpec, splits, epochs: int, seed: int, device: str = "auto") -> tuple[float, float]:
    torch.manual_seed(seed)
    model = build(spec)
    start = time.perf_counter()
    train(model, splits.train, TrainConfig(epochs=epochs, seed=seed, device=device))
    seconds = time.perf_counter() - start
    return evaluate(model, splits.test)["accuracy"], epochs * len(splits.train) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=list(BUDGETS))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--params-per-mac", type=float, default=0.05)
    parser.add_argument("--design-seconds", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    for name in args.datasets:
        splits = load_dataset(name)
        for budget in BUDGETS[name]:
            ours, solved = designed(splits, budget, args.params_per_mac, args.design_seconds)
            for label, spec in (("designed (MILP)", ours), ("scaled ResNet", scaled_resnet(splits, budget))):
                runs = [fit(spec, splits, args.epochs, seed, args.device) for seed in range(args.seeds)]
                costs = count(spec)
                accuracy = [a for a, _ in runs]
                rows.append((name, budget, label, statistics.mean(accuracy),
                             statistics.pstdev(accuracy) if len(runs) > 1 else 0.0,
                             costs.params, costs.macs, statistics.mean(t for _, t in runs),
                             solved["status"] if label.startswith("designed") else ""))
                print(f"{name} {budget:.3g} {label}: accuracy {accuracy}, params {costs.params:,}, "
                      f"MACs {costs.macs:,}", file=sys.stderr)

    print(f"\n{args.epochs} epochs, {args.seeds} seed(s), one CPU thread\n")
    print("| dataset | MACs budget | network | test accuracy | params | MACs | train images/s | design status |")
    print("|---|---|---|---|---|---|---|---|")
    for name, budget, label, mean, spread, params, macs, throughput, status in rows:
        print(f"| {name} | {budget:.3g} | {label} | {100 * mean:.2f} ± {100 * spread:.2f}% | {params:,} | {macs:,} "
              f"| {throughput:,.0f} | {status} |")


if __name__ == "__main__":
    main()
