"""Channel pruning of a user's model: rate-distortion allocation over Torch-Pruning's dependency
groups (``designer.pruning.prune_channels``) against Torch-Pruning's own magnitude pruner at a
uniform ratio, at the same MACs, fine-tuned alike.

The model is a CIFAR-style ResNet-18 written by hand (torchvision cannot be a dependency here;
``tests/models/cifar.py``), ``--width`` scaling its channels (1.0: 11.2M parameters), trained
on a built-in dataset. For each MACs target: ours at ``max_macs``; the baseline's uniform
ratio found by bisection so that its recounted MACs are at most ours (never more); then the
same fine-tuning (``--finetune-epochs``, SGD, same seed) and the test accuracy. Seeds repeat
the whole run (training included).

    python benchmarks/channels.py --seeds 0 1 2 --targets 0.5 0.25
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch_pruning as tp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.models.cifar import CifarResNet  # noqa: E402

from designer.pruning import prune_channels  # noqa: E402
from designer.pruning.groups import count_costs  # noqa: E402
from designer.train.data import load_dataset  # noqa: E402
from designer.train.loop import TrainConfig, evaluate, train  # noqa: E402


def uniform_magnitude(model: torch.nn.Module, example: torch.Tensor, max_macs: float) -> tuple[torch.nn.Module, float]:
    """Torch-Pruning's MagnitudePruner (L1, per-layer uniform ratio) at the largest ratio whose
    recounted MACs stay at most ``max_macs`` (bisection on the ratio)."""
    def pruned(ratio: float) -> torch.nn.Module:
        copy_ = copy.deepcopy(model)
        pruner = tp.pruner.MagnitudePruner(copy_, example, importance=tp.importance.MagnitudeImportance(p=1),
                                           pruning_ratio=ratio, ignored_layers=[copy_.fc])
        pruner.step()
        return copy_

    low, high = 0.0, 0.99
    for _ in range(14):
        middle = (low + high) / 2
        if count_costs(pruned(middle), example)[1] <= max_macs:
            high = middle
        else:
            low = middle
    return pruned(high), high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--width", type=float, default=0.25, help="channel multiplier of ResNet-18 (1.0: full)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--targets", type=float, nargs="+", default=[0.5, 0.25], help="kept fraction of MACs")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(1)
    widths = tuple(max(1, round(w * args.width)) for w in (64, 128, 256, 512))
    rows: dict[tuple[str, float], list[float]] = {}
    info: dict[tuple[str, float], list[tuple[int, int]]] = {}
    dense_accuracy, timings = [], []
    for seed in args.seeds:
        splits = load_dataset(args.dataset, seed=seed)
        torch.manual_seed(seed)
        model = CifarResNet(widths=widths, num_classes=splits.num_classes, in_channels=splits.in_channels)
        train(model, splits.train, TrainConfig(epochs=args.epochs, seed=seed, device=args.device))
        model = model.cpu().eval()
        dense_accuracy.append(evaluate(model, splits.test)["accuracy"])
        example = torch.zeros(1, splits.in_channels, splits.resolution, splits.resolution)
        calibration = splits.train.tensors[0][:args.calibration]
        params0, macs0 = count_costs(model, example)
        finetune = TrainConfig(epochs=args.finetune_epochs, lr=0.01, warmup_epochs=0, seed=seed, device=args.device)
        for target in args.targets:
            start = time.perf_counter()
            ours = prune_channels(model, example, calibration, max_macs=target * macs0).model
            timings.append(time.perf_counter() - start)
            our_macs = count_costs(ours, example)[1]
            baseline, ratio = uniform_magnitude(model, example, our_macs)
            for name, pruned in (("rd (ours)", ours), ("torch-pruning uniform L1", baseline)):
                train(pruned, splits.train, finetune)
                pruned = pruned.cpu().eval()
                rows.setdefault((name, target), []).append(evaluate(pruned, splits.test)["accuracy"])
                info.setdefault((name, target), []).append(count_costs(pruned, example)[::-1])
            print(f"seed {seed} target {target}: ours {rows[('rd (ours)', target)][-1]:.3f}, uniform (ratio "
                  f"{ratio:.3f}) {rows[('torch-pruning uniform L1', target)][-1]:.3f}", file=sys.stderr, flush=True)

    def spread(values: list[float]) -> str:
        if len(values) == 1:
            return f"{100 * values[0]:.1f}"
        return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"

    print(f"CIFAR-style ResNet-18 x{args.width:g} (widths {widths}), {args.dataset}, seeds {args.seeds}, "
          f"{args.epochs} training epochs, {args.finetune_epochs} fine-tuning epochs each; dense accuracy "
          f"{spread(dense_accuracy)}%; params {params0:,}, MACs {macs0:,}\n")
    print("| MACs kept | method | test accuracy (%) | MACs (seed 0) | params (seed 0) |\n|---|---|---|---|---|")
    for (name, target), values in rows.items():
        macs, params = info[(name, target)][0]
        print(f"| {target:g} | {name} | {spread(values)} | {macs:,} | {params:,} |")
    print(f"\nour channel pruning (curves, allocation, recount): {statistics.mean(timings):.1f} s per run on average")


if __name__ == "__main__":
    main()
