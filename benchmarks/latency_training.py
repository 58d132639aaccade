"""Trained comparison at equal measured latency: a latency-aware design against the best of
several ResNet scalings, on the small datasets.

For each dataset: the target latency is the measured latency (batch 1, inference, this CPU,
one thread) of the reference scaled ResNet of ``benchmarks/training.py`` at ``--macs``. A
latency profile is fitted on random networks at the dataset's resolution; the design MILP
(the pipeline's space, ``--params-per-mac``) gets the target as its latency budget and is
re-designed with the budget scaled by target / measured until it measures within 90-100% of
the target (the best design measured within the target is kept).
The baseline is made fair: ResNet scalings (stem width, blocks per stage, stem stride) whose
measured latency is within the target and whose parameters are at most the design's, each
trained once (seed 0, ``--screen-epochs``), the best on the *validation* split kept. Then the design and that
ResNet are trained alike (``designer.train``: same recipe, epochs and BN) with ``--seeds``
seeds; the table reports test accuracy, params, MACs and measured latency.

    python benchmarks/latency_training.py                        # mnist5k and shapes
    python benchmarks/latency_training.py --datasets shapes --epochs 3 --seeds 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace

import torch

from designer.costs import count
from designer.design.latency import measure_ms, profile
from designer.network import build
from designer.pipeline import PipelineConfig, pipeline_problem
from designer.spec import NetworkSpec
from designer.train.data import load_dataset
from designer.train.loop import TrainConfig, evaluate, train

sys.path.insert(0, "benchmarks")
from latency import calibrated_design  # noqa: E402
from training import resnet_spec, scaled_resnet  # noqa: E402


def trained(spec: NetworkSpec, splits, epochs: int, seed: int) -> tuple[float, float]:
    """(validation accuracy, test accuracy) after training ``spec`` with ``seed``."""
    torch.manual_seed(seed)
    model = build(spec)
    train(model, splits.train, TrainConfig(epochs=epochs, seed=seed, device="cpu"))
    return evaluate(model, splits.val)["accuracy"], evaluate(model, splits.test)["accuracy"]


def latency_design(splits, target_ms: float, args) -> tuple[NetworkSpec, float, float]:
    fitted = profile("cpu", "fp32", 1, networks=args.fit_networks, resolution=splits.resolution, seed=1)
    base = pipeline_problem(PipelineConfig(macs=args.macs * 4, params=args.params_per_mac * args.macs),
                            splits.resolution, splits.in_channels, splits.num_classes)
    problem = replace(base, out_widths=(8, 512), max_latency_ms=target_ms, latency_profile=fitted.to_dict())
    result, measured = calibrated_design(problem, target_ms, args.calibrations + 1, args.design_seconds,
                                         lambda spec: measure_ms(spec, "cpu", "fp32", 1))
    if measured > target_ms:
        raise RuntimeError(f"no design measured within {target_ms:.3f} ms after {args.calibrations + 1} attempts")
    return result.spec, measured, fitted.fit["median_error"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=["mnist5k", "shapes"])
    parser.add_argument("--macs", type=float, default=6e6, help="MACs of the reference ResNet setting the latency")
    parser.add_argument("--params-per-mac", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--screen-epochs", type=int, default=2, help="epochs of the ResNet scalings' screening run")
    parser.add_argument("--fit-networks", type=int, default=24)
    parser.add_argument("--design-seconds", type=float, default=30.0)
    parser.add_argument("--calibrations", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.datasets:
        splits = load_dataset(name)
        reference = scaled_resnet(splits, args.macs)
        target = measure_ms(reference, "cpu", "fp32", 1)
        design, design_ms, fit_error = latency_design(splits, target, args)
        design_params = count(design).params
        candidates = []
        for width in (8, 12, 16, 24, 32):
            for depth in (1, 2, 3):
                for stem_stride in (1, 2):
                    spec = resnet_spec(splits, width, depth, stem_stride)
                    if count(spec).params > design_params:
                        continue
                    ms = measure_ms(spec, "cpu", "fp32", 1)
                    if ms <= target:
                        candidates.append((spec, ms))
        print(f"{name}: target {target:.3f} ms, {len(candidates)} ResNet scalings within it and the design's "
              f"{design_params:,} params", file=sys.stderr)
        scored = [(trained(spec, splits, args.screen_epochs, 0)[0], spec, ms) for spec, ms in candidates]
        best_val, best, best_ms = max(scored, key=lambda item: item[0])
        for label, spec, ms in (("latency-aware design", design, design_ms),
                                (f"best ResNet scaling ({best.name}; val {100 * best_val:.1f}% of "
                                 f"{len(candidates)})", best, best_ms)):
            tests = [trained(spec, splits, args.epochs, seed)[1] for seed in range(args.seeds)]
            costs = count(spec)
            rows.append((name, target, label, statistics.mean(tests),
                         statistics.pstdev(tests) if len(tests) > 1 else 0.0, costs.params, costs.macs, ms))
            print(f"{name} {label}: test {tests}", file=sys.stderr)
        rows.append((name, target, f"(profile fit median error {100 * fit_error:.1f}%)", None, None, None, None, None))
    print(f"\n{args.epochs} epochs, {args.seeds} seeds, CPU fp32, batch-1 inference latency, one thread\n")
    print("| dataset | target ms | network | test accuracy | params | MACs | measured ms |\n|---|---|---|---|---|---|---|")
    for name, target, label, mean, spread, params, macs, ms in rows:
        if mean is None:
            print(f"| {name} | {target:.3f} | {label} | | | | |")
            continue
        print(f"| {name} | {target:.3f} | {label} | {100 * mean:.2f} ± {100 * spread:.2f}% | {params:,} | {macs:,} "
              f"| {ms:.3f} |")


if __name__ == "__main__":
    main()
