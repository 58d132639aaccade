"""What OBS's layer database costs (issue 34): the distortion curves of the hand-written CIFAR
ResNet-18 (``tests/models/cifar.py``, 11.2 M parameters, 21 prunable layers) measured with
re-fitted weights (``criterion=OBS()``) against plain magnitude masks, ``--points`` measured
points per layer on ``--images`` calibration images, wall seconds and the peak resident memory
of each (one process per criterion, so the peaks do not mix).

    python benchmarks/obs_database.py                        # 13 points, 64 images, both cores
    python benchmarks/obs_database.py --points 7 --images 32 --threads 1

The weights are the seeded initialisation and the images random: the cost of the curves does
not depend on the values (the same products and solves), their quality is the pruning
benchmark's question.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(criterion: str, points: int, images: int, threads: int) -> dict:
    """In this process: the curves' seconds and the peak resident memory (MB)."""
    import torch

    from designer.pruning.curves import distortion_curves
    from tests.models.cifar import resnet18
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, inputs = resnet18().eval(), torch.randn(images, 3, 32, 32)
    begun = time.perf_counter()
    distortion_curves(model, inputs, [i / 100 for i in range(101)], criterion=criterion, points=points)
    return {"criterion": criterion, "seconds": time.perf_counter() - begun,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=13)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--criteria", nargs="+", default=["magnitude", "obs"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: measure this criterion, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.points, args.images, args.threads)))
        return
    print(f"| criterion | points | images | threads | seconds | peak resident MB |")
    print("|---|---|---|---|---|---|")
    for criterion in args.criteria:
        done = subprocess.run([sys.executable, __file__, "--one", criterion, "--points", str(args.points), "--images",
                               str(args.images), "--threads", str(args.threads)], capture_output=True, text=True,
                              cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {criterion} | {args.points} | {args.images} | {args.threads} | {row['seconds']:.1f} | "
              f"{row['peak_mb']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
