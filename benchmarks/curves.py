"""Distortion curves in minutes: their cost against their error (issue 26).

The model is the hand-written CIFAR ResNet-18 of ``tests/models/cifar.py`` (torchvision's
BasicBlock topology with a 3x3 stem and no max-pool, 11.2 M parameters at ``--width full``; 21
prunable layers), trained for ``--epochs`` on the built-in ``shapes`` dataset (32x32, seeded)
so the curves are those of a trained network. The reference is the 41-point grid measured at
every point on ``--reference-images`` calibration images (256: what the pruning benchmark
used); each variant measures ``points`` grid points per layer on ``images`` images and
interpolates the rest (``distortion_curves(points=...)``). Columns: wall seconds; the curve
error, per layer the largest |d - d_ref| over the grid divided by the layer's largest
reference distortion, as mean and max over layers; and the *allocation regret*: the DP's
allocation from the variant's curves, scored on the reference curves, against the reference's
own allocation at the same kept weights (0% = the same total distortion).

    python benchmarks/curves.py                                  # full width, both cores
    python benchmarks/curves.py --width narrow --reference-images 64 --images 16 32 --points 5 9
    python benchmarks/curves.py --threads 1 --cache ref.json     # one core; keep the reference
    python benchmarks/curves.py --device cuda --images 256 --points 41   # the GPU check: every point

The reference takes about 35 minutes on one core at full width: ``--cache FILE`` keeps it
(the model is retrained, seeded, on one thread, and the reference reused only if the trained
weights' fingerprint matches the one saved beside it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from designer.pruning.allocate import allocate  # noqa: E402
from designer.pruning.curves import Curves, default_grid, distortion_curves  # noqa: E402
from designer.train.data import load_dataset  # noqa: E402
from designer.train.loop import TrainConfig, train  # noqa: E402
from tests.models.cifar import CifarResNet  # noqa: E402

WIDTHS = {"full": (64, 128, 256, 512), "narrow": (16, 32, 64, 128)}
SPARSITIES = (0.9, 0.95, 0.98)


def curve_error(curves: Curves, reference: Curves) -> list[float]:
    """Per layer: max over the grid of |d - d_ref|, over the layer's largest d_ref."""
    errors = []
    for layer, ref in zip(curves.layers, reference.layers):
        scale = max(ref.distortion) or 1.0
        errors.append(max(abs(a - b) for a, b in zip(layer.distortion, ref.distortion)) / scale)
    return errors


def reference_distortion(allocation, reference: Curves) -> float:
    """The summed reference distortion of an allocation (its sparsities are grid points)."""
    total = 0.0
    for ref in reference.layers:
        index = min(range(len(ref.sparsity)), key=lambda i: abs(ref.sparsity[i] - allocation.sparsity[ref.name]))
        total += ref.distortion[index]
    return total


def regret(curves: Curves, reference: Curves, sparsity: float) -> float:
    budget = sum(layer.weights for layer in reference.layers) * (1 - sparsity)
    best = reference_distortion(allocate(reference, keep_weights=budget), reference)
    ours = reference_distortion(allocate(curves, keep_weights=budget), reference)
    return (ours - best) / best if best > 0 else 0.0


def trained_model(width: str, epochs: int, seed: int, device: str) -> tuple[torch.nn.Module, torch.Tensor]:
    splits = load_dataset("shapes", seed=seed)
    torch.manual_seed(seed)
    model = CifarResNet(widths=WIDTHS[width], num_classes=splits.num_classes).to(device)
    if epochs:
        train(model, splits.train, TrainConfig(epochs=epochs, lr=0.05, seed=seed, device=device))
    return model.eval(), splits.train.tensors[0].to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", choices=sorted(WIDTHS), default="full")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs on shapes before the curves")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", type=int, default=41, help="grid points (the reference measures every one)")
    parser.add_argument("--reference-images", type=int, default=256)
    parser.add_argument("--images", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--points", type=int, nargs="+", default=[6, 9, 13])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the GPU check)")
    parser.add_argument("--cache", type=Path, default=None, help="keep the reference curves in this file")
    args = parser.parse_args()
    # trained on one thread whatever --threads says: the weights (and so a cached reference)
    # are then the same for every thread count
    torch.set_num_threads(1)
    model, images = trained_model(args.width, args.epochs, args.seed, args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = default_grid(args.grid)
    fingerprint = f"{sum(float(p.double().abs().sum()) for p in model.parameters()):.9e}"
    stamp = args.cache.with_suffix(".model") if args.cache is not None else None
    if args.cache is not None and args.cache.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        reference, ref_seconds = Curves.load(args.cache), None
    else:
        start = time.perf_counter()
        reference = distortion_curves(model, images[:args.reference_images], grid, progress=True)
        ref_seconds = time.perf_counter() - start
        if args.cache is not None:
            reference.save(args.cache)
            stamp.write_text(fingerprint)
    print(f"CIFAR ResNet-18 on {args.device} ({args.width} width, {sum(p.numel() for p in model.parameters()):,} params, "
          f"{len(reference.layers)} layers), {args.epochs} epoch(s) on shapes, {torch.get_num_threads()} thread(s); "
          f"reference: {args.grid} points on {args.reference_images} images"
          + (f", {ref_seconds:.0f} s" if ref_seconds is not None else " (cached)") + "\n")
    header = "| images | points | seconds | curve error mean | max | " + " | ".join(
        f"regret {s:.0%}" for s in SPARSITIES) + " |"
    print(header)
    print("|" + "---|" * (5 + len(SPARSITIES)))
    for count in args.images:
        for points in args.points:
            start = time.perf_counter()
            curves = distortion_curves(model, images[:count], grid, points=points)
            seconds = time.perf_counter() - start
            errors = curve_error(curves, reference)
            regrets = " | ".join(f"{regret(curves, reference, s):.1%}" for s in SPARSITIES)
            print(f"| {count} | {points} | {seconds:.1f} | {sum(errors) / len(errors):.1%} | {max(errors):.1%} | "
                  f"{regrets} |", flush=True)


if __name__ == "__main__":
    main()
