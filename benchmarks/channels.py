"""Channel pruning of a user's model: rate-distortion allocation over Torch-Pruning's dependency
groups (``designer.pruning.prune_channels``) against Torch-Pruning's own pruners at the same
MACs, fine-tuned alike: its uniform L1 magnitude pruner and its global pruning with its
strongest importances (group norm, Taylor); each pruned model's measured CPU latency at batch 1
and 32 beside its MACs.

The model is a CIFAR-style ResNet-18 written by hand (torchvision cannot be a dependency here;
``tests/models/cifar.py``), ``--width`` scaling its channels (1.0: 11.2M parameters), trained
on a built-in dataset. For each MACs target: ours at ``max_macs``; the baseline's ratio found
by bisection so that its recounted MACs are at most the same budget (never more); then the
same BatchNorm re-estimation on the calibration batch, the test accuracy before fine-tuning
(post-training), the same fine-tuning (``--finetune-epochs``, SGD, same seed) and the test
accuracy. Ours runs with each ``--criteria``: ``magnitude`` (the plain cut) and ``obs`` (the
layers reading the cut channels re-fitted by least squares on the calibration batch). Seeds repeat
the whole run (training included).

    python benchmarks/channels.py --seeds 0 1 2 --targets 0.5 0.25
    python benchmarks/channels.py --dataset textures --width 0.5 --epochs 10 --targets 0.25
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
from designer.pruning.curves import recalibrate_batchnorm  # noqa: E402
from designer.pruning.groups import count_costs  # noqa: E402
from designer.timing import median_forward_seconds  # noqa: E402
from designer.train.data import load_dataset  # noqa: E402
from designer.train.loop import TrainConfig, evaluate, train  # noqa: E402


def torch_pruning(model: torch.nn.Module, example: torch.Tensor, max_macs: float, importance: str,
                  calibration: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.nn.Module, float]:
    """Torch-Pruning at the largest ratio whose recounted MACs stay at most ``max_macs``
    (bisection on the ratio): ``uniform-l1`` (MagnitudePruner, L1, the same ratio per layer),
    ``global-group-norm`` (GroupMagnitudeImportance, p=2, global ranking over the groups),
    ``global-taylor`` (GroupTaylorImportance on the gradients of the loss on the calibration
    batch, global ranking). The classifier is never pruned (as ours)."""
    x, y = calibration

    def pruned(ratio: float) -> torch.nn.Module:
        copy_ = copy.deepcopy(model)
        if importance == "uniform-l1":
            pruner = tp.pruner.MagnitudePruner(copy_, example, importance=tp.importance.MagnitudeImportance(p=1),
                                               pruning_ratio=ratio, ignored_layers=[copy_.fc])
        else:
            score = (tp.importance.GroupMagnitudeImportance(p=2) if importance == "global-group-norm"
                     else tp.importance.GroupTaylorImportance())
            pruner = tp.pruner.MetaPruner(copy_, example, importance=score, pruning_ratio=ratio, global_pruning=True,
                                          ignored_layers=[copy_.fc])
            if importance == "global-taylor":
                copy_.eval()
                copy_.zero_grad()
                torch.nn.functional.cross_entropy(copy_(x), y).backward()
        pruner.step()
        copy_.zero_grad(set_to_none=True)
        return copy_

    low, high = 0.0, 0.99
    for _ in range(14):
        middle = (low + high) / 2
        if count_costs(pruned(middle), example)[1] <= max_macs:
            high = middle
        else:
            low = middle
    return pruned(high), high


BASELINES = ("uniform-l1", "global-group-norm", "global-taylor")


def latency_ms(model: torch.nn.Module, example: torch.Tensor, batch: int) -> float:
    """Median CPU forward time (ms) at ``batch``, eval mode, on a copy."""
    x = example.expand(batch, *example.shape[1:]).contiguous()
    return 1e3 * median_forward_seconds(copy.deepcopy(model).eval(), x)


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
    parser.add_argument("--baselines", nargs="+", default=list(BASELINES), choices=BASELINES)
    parser.add_argument("--criteria", nargs="+", default=["magnitude", "obs"], choices=["magnitude", "obs"],
                        help="ours with the plain cut (magnitude) and with the consumers re-fitted (obs)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    widths = tuple(max(1, round(w * args.width)) for w in (64, 128, 256, 512))
    rows: dict[tuple[str, float], list[float]] = {}
    info: dict[tuple[str, float], list[tuple[int, int]]] = {}
    untuned: dict[tuple[str, float], list[float]] = {}
    dense_accuracy, timings, dense_latency = [], {}, []
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
            ours = []
            for criterion in args.criteria:
                start = time.perf_counter()
                ours.append((f"rd{' + obs' if criterion == 'obs' else ''} (ours)",
                             prune_channels(model, example, calibration, max_macs=target * macs0,
                                            criterion=criterion).model))
                timings.setdefault(criterion, []).append(time.perf_counter() - start)
            # every method under the same budget, counted on its result: Torch-Pruning's ratio bisected to
            # the largest whose recounted MACs are at most the budget (ours never exceed it either)
            budget = target * macs0
            labelled = (calibration, splits.train.tensors[1][:args.calibration])
            candidates = ours + [
                (f"torch-pruning {name}", torch_pruning(model, example, budget, name, labelled)[0])
                for name in args.baselines]
            for name, pruned in candidates:
                recalibrate_batchnorm(pruned, calibration)  # every method alike, before the post-training figure
                untuned.setdefault((name, target), []).append(evaluate(pruned.eval(), splits.test)["accuracy"])
                train(pruned, splits.train, finetune)
                pruned = pruned.cpu().eval()
                rows.setdefault((name, target), []).append(evaluate(pruned, splits.test)["accuracy"])
                info.setdefault((name, target), []).append((*count_costs(pruned, example)[::-1],
                                                            latency_ms(pruned, example, 1),
                                                            latency_ms(pruned, example, 32)))
            print(f"seed {seed} target {target}: " + ", ".join(f"{name} {rows[(name, target)][-1]:.3f}"
                                                               for name, _ in candidates), file=sys.stderr, flush=True)
        dense_latency.append((latency_ms(model, example, 1), latency_ms(model, example, 32)))

    def spread(values: list[float]) -> str:
        if len(values) == 1:
            return f"{100 * values[0]:.1f}"
        return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"

    print(f"CIFAR-style ResNet-18 x{args.width:g} (widths {widths}), {args.dataset}, seeds {args.seeds}, "
          f"{args.epochs} training epochs, {args.finetune_epochs} fine-tuning epochs each; dense accuracy "
          f"{spread(dense_accuracy)}%; params {params0:,}, MACs {macs0:,}\n")
    print(f"dense CPU latency (seed 0, one thread): {dense_latency[0][0]:.2f} ms at batch 1, "
          f"{dense_latency[0][1]:.2f} ms at batch 32\n")
    print("| MACs kept | method | before fine-tuning (%) | test accuracy (%) | MACs (seed 0) | params (seed 0) | "
          "latency ms, batch 1 | batch 32 |\n|---|---|---|---|---|---|---|---|")
    for (name, target), values in rows.items():
        macs, params, one, many = info[(name, target)][0]
        print(f"| {target:g} | {name} | {spread(untuned[(name, target)])} | {spread(values)} | {macs:,} | {params:,} "
              f"| {one:.2f} | {many:.2f} |")
    for criterion, seconds in timings.items():
        print(f"\nour channel pruning with {criterion} (curves, allocation, recount): {statistics.mean(seconds):.1f} s "
              f"per run on average")


if __name__ == "__main__":
    main()
