"""Mapping benchmark: off-chip traffic of the baselines and of our solver per graph and budget.

    python benchmarks/mapping.py --graphs ../shared/graphs/checkmate/*_train.json --budgets M_R M_H
    python benchmarks/mapping.py --graphs ../shared/graphs/random-layered/*.json --strategies divide
    python benchmarks/mapping.py --graphs ../shared/graphs/checkmate/vgg16_train.json --strategies cpsat ilp
    python benchmarks/mapping.py --generated cells8 cells20 encoder4 --budgets M_R M_H
    python benchmarks/mapping.py --models tests/models/cifar.py:tv_resnet18@3,224,224 \
        tests/models/blocks.py:vit_block@3,224,224 --time-limit 60
    python benchmarks/mapping.py --models tests/models/cifar.py:tv_resnet18@3,224,224 --training --weights \
        --objectives offchip dram --budgets M_R M_H

One markdown row per graph, budget (M_R, M_H, M_P), strategy and objective: each baseline's
cost in the objective, ours, our mapping's off-chip bytes and DRAM traffic (both figures
whatever was minimised), the
reduction against the best baseline, the largest reduction any mapping could have (from the
proven lower bound), status, gap and seconds; every mapping is replayed by the simulator, and a
row says so. Below the table, per budget, the average reduction over the graphs where the best
baseline moves bytes, and the average of those ceilings. The graphs are read from wherever
they are given: the project never depends on ../shared.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from designer.mapping import MappingProblem, TensorGraph, budgets, load, solve
from designer.mapping.sources.generators import cell_network, transformer_encoder
from designer.mapping.core.objective import OBJECTIVES
from designer.mapping.core.simulate import simulate
from designer.mapping.strategies import STRATEGIES

BASELINES = ("topological/belady", "topological/greedy", "min-peak/belady", "min-peak/greedy")


def generated(name: str) -> TensorGraph:
    match = re.fullmatch(r"(cells|encoder)(\d+)", name)
    if match is None:
        raise SystemExit(f"--generated: expected cellsN or encoderN, got {name!r}")
    kind, count = match.group(1), int(match.group(2))
    return cell_network(cells=count) if kind == "cells" else transformer_encoder(layers=count)


def imported(reference: str, fuse: bool, include_weights: bool, training: bool = False) -> TensorGraph:
    """``PATH.py:FACTORY@C,H,W``: a module imported through torch.export at a 1 x C x H x W input
    (``training``: the forward and backward graph of one training step)."""
    factory, _, shape = reference.rpartition("@")
    if not factory:
        raise SystemExit(f"--models: expected PATH.py:FACTORY@C,H,W, got {reference!r}")
    name = (factory.rpartition(":")[2] + ("" if fuse else " (unfused)") + (" +weights" if include_weights else "")
            + (" training" if training else ""))
    return load(factory, input_shape=shape, training=training, weights=include_weights, fuse=fuse, name=name)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graphs", nargs="*", default=[])
    parser.add_argument("--generated", nargs="*", default=[],
                        help="cellsN (a DARTS-style network of N cells, 4 nodes, 16 channels, 32x32) or "
                             "encoderN (N transformer encoder layers, 128 tokens, width 256)")
    parser.add_argument("--models", nargs="*", default=[],
                        help="PATH.py:FACTORY@C,H,W: a module imported through torch.export (fused unless --no-fuse)")
    parser.add_argument("--no-fuse", action="store_true", help="--models: map every node as its own operator")
    parser.add_argument("--training", action="store_true", help="--models: the training step's graph")
    parser.add_argument("--budgets", nargs="+", default=["M_R", "M_H", "M_P"])
    parser.add_argument("--strategies", nargs="+", default=["cpsat"], choices=list(STRATEGIES))
    parser.add_argument("--objectives", nargs="+", default=["offchip"], choices=list(OBJECTIVES))
    parser.add_argument("--order", default="free", choices=["free", "given"])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--weights", action="store_true", help="weights as tensors (random layered graphs, models)")
    parser.add_argument("--plot", help="write solve time against graph size (operators) to this PNG; with "
                                       "--tiling, the traffic curve of each model to PREFIX-<model>.png")
    parser.add_argument("--tiling", action="store_true",
                        help="--models: map below M_R with tiling (MCUNetV2's question) at M_R/2, /4, /8 and the "
                             "smallest footprint, and draw the traffic curve")
    parser.add_argument("--max-extra-macs", type=float, default=0.1, help="--tiling: recomputed MACs allowed")
    parser.add_argument("--points", type=int, default=8, help="--tiling: points on the curve")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.tiling:
        for reference in args.models:
            tiling_table(reference, args)
        return
    header = (["graph", "ops", "budget", "bytes", "strategy", "objective", *BASELINES, "ours", "off-chip",
               "DRAM traffic", "reduction vs best baseline", "largest possible (bound)", "status (method)", "gap", "s",
               "valid"])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    spilling: dict[str, list[tuple[float, float | None]]] = {}  # budget -> (reduction, ceiling)
    graphs = [load(path, weights=args.weights) for path in args.graphs]
    graphs += [generated(name) for name in args.generated]
    graphs += [imported(reference, not args.no_fuse, args.weights, args.training) for reference in args.models]
    timings: list[tuple[int, float, str]] = []
    for graph in graphs:
        start = time.perf_counter()
        limits = budgets(graph, time_limit=min(30.0, args.time_limit))  # once per graph, for every row
        print(f"budgets of {graph.name}: M_P {'proven' if limits.peak_proven else 'best found'} in "
              f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
        for name in args.budgets:
            for strategy in args.strategies:
                for objective in args.objectives:
                    problem = MappingProblem(graph, name, strategy, objective, args.order,
                                             time_limit=args.time_limit, budgets=limits)
                    result = solve(problem)
                    row(problem, result, name, spilling)
                    timings.append((len(graph.operators), result.solve.seconds, f"{strategy} {objective} {name}"))
    for label, rows in spilling.items():
        ceilings = [c for _, c in rows]
        ceiling = (f"{100 * sum(ceilings) / len(ceilings):.1f}%" if all(c is not None for c in ceilings)
                   else "n/a (a graph without a bound)")
        print(f"\n{label}: the best baseline moves bytes on {len(rows)} graphs; average reduction against it "
              f"{100 * sum(r for r, _ in rows) / len(rows):.1f}%, the most any mappings could average {ceiling}")
    if args.plot:
        plot_scaling(timings, args.plot)


def row(problem: MappingProblem, result, budget: str, spilling: dict) -> None:
    """One markdown row; every mapping (ours and each baseline's) replayed by the simulator."""
    graph = problem.graph
    baseline = result.baseline_costs()
    valid = bool(result.replay) and all(simulate(graph, m.to_dict(graph)).valid for m in result.baselines.values())
    best, ours, bound = min(baseline.values(), default=None), result.solve.objective, result.solve.bound
    reduction = "n/a" if not best else f"{100 * (1 - ours / best):.1f}%"
    ceiling = None if not best or bound is None else max(0.0, 1 - bound / best)
    if best:
        spilling.setdefault(f"{budget} ({problem.strategy}, {problem.objective.name})", []).append(
            (1 - ours / best, ceiling))
    gap = "n/a" if result.solve.gap is None else f"{100 * result.solve.gap:.2f}%"
    # a given order runs the graph's order only; elsewhere a missing baseline failed to place
    cells = [f"{baseline[k]:,}" if k in baseline else ("n/a" if problem.order == "given" and k.startswith("min-peak")
                                                       else "fails") for k in BASELINES]
    print(f"| {graph.name} | {len(graph.operators)} | {budget} | {problem.scratchpad_bytes:,} | {problem.strategy} "
          f"| {problem.objective.name} | " + " | ".join(cells)
          + f" | {ours:,} | {result.offchip_bytes:,} | {result.dram_bytes['traffic']:,} | {reduction} "
          f"| {'n/a' if ceiling is None else f'{100 * ceiling:.1f}%'} | {result.solve.status} ({result.method}) "
          f"| {gap} | {result.solve.seconds:.1f} | {'yes' if valid else 'NO'} |", flush=True)


def tiling_table(reference: str, args: argparse.Namespace) -> None:
    """The tiled mapping of one model at fractions of its untiled M_R, and its traffic curve."""
    from designer.mapping import Source
    from designer.mapping.tiling.search import candidates, map_curve, map_tiled, plot_curve, smallest_footprint
    from designer.mapping.tiling.plan import model_macs
    factory, _, shape = reference.rpartition("@")
    name = factory.rpartition(":")[2]
    source = Source(model=factory, input_shape=shape)
    source.check()
    program, example = source.export()
    start = time.perf_counter()
    found = candidates(program, name=name)
    total, untiled = model_macs(program.graph), found[0].required
    cap = smallest_footprint(found, args.max_extra_macs, total)
    anything = smallest_footprint(found, None, total)
    print(f"\n{name}: untiled M_R {untiled:,} bytes; {len(found)} candidates in {time.perf_counter() - start:.1f} s; "
          f"smallest footprint {cap.required:,} (M_R/{untiled / cap.required:.2f}) within "
          f"{args.max_extra_macs:.0%} extra MACs ({cap.describe()}), {anything.required:,} "
          f"(M_R/{untiled / anything.required:.2f}) at any ({anything.describe()}); model MACs {total:,}\n")
    print("| model | scratchpad | vs M_R | tiling | extra MACs | traffic | bound | gap | status | max abs diff | s "
          "| valid |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    sizes = sorted({untiled // 2, untiled // 4, untiled // 8, cap.required}, reverse=True)
    for size in sizes:
        begun = time.perf_counter()
        try:
            tiled = map_tiled(program, example, size, time_limit=args.time_limit, max_extra_macs=args.max_extra_macs,
                              name=name, found=found)
        except ValueError as error:
            print(f"| {name} | {size:,} | M_R/{untiled / size:.2f} | {error} | | | | | | | | |")
            continue
        result, candidate = tiled.result, tiled.choice.candidate
        gap = "n/a" if result.solve.gap is None else f"{100 * result.solve.gap:.2f}%"
        bound = "n/a" if result.solve.bound is None else f"{result.solve.bound:,.0f}"
        diff = "n/a" if tiled.max_abs_difference is None else f"{tiled.max_abs_difference:.1e}"
        print(f"| {name} | {size:,} | M_R/{untiled / size:.2f} | {candidate.describe()} "
              f"| {candidate.extra_macs / total:.1%} | {result.solve.objective:,} | {bound} | {gap} "
              f"| {result.solve.status} | {diff} | {time.perf_counter() - begun:.1f} "
              f"| {'yes' if result.replay else 'NO'} |",
              flush=True)
    begun = time.perf_counter()
    rows = map_curve(program, "min", "M_P", args.points, time_limit=args.time_limit * args.points, name=name,
                     max_extra_macs=args.max_extra_macs, found=found)
    print(f"\ncurve of {name} ({time.perf_counter() - begun:.0f} s, --max-extra-macs {args.max_extra_macs}):\n")
    print("| scratchpad | tiling | traffic | bound | gap | untiled traffic | valid |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        plain = r.get("untiled", {}).get("objective")
        gap = "n/a" if r["gap"] is None else f"{100 * r['gap']:.2f}%"
        bound = "n/a" if r["bound"] is None else f"{r['bound']:,.0f}"
        print(f"| {r['scratchpad_bytes']:,} | {r['tiling']} | {r['objective']:,} | {bound} "
              f"| {gap} | {'does not fit' if plain is None else f'{plain:,}'} | {'yes' if r['valid'] else 'NO'} |")
    if args.plot:
        plot_curve(rows, f"{args.plot.removesuffix('.png')}-{name}.png", title=f"{name}: traffic against scratchpad")


def plot_scaling(timings: list[tuple[int, float, str]], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label in sorted({label for _, _, label in timings}):
        points = sorted((ops, seconds) for ops, seconds, kind in timings if kind == label)
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=label)
    ax.set_xlabel("operators"), ax.set_ylabel("solve seconds"), ax.set_xscale("log"), ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nplot written to {path}")


if __name__ == "__main__":
    main()
