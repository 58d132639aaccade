"""Latency benchmark: how well the fitted latency model predicts, and what a latency budget buys.

1. *Prediction*: profiles fitted on blocks (``profile --quick`` grid) and on random whole
   networks (``profile --networks``), both checked on held-out random networks of every
   family (another seed): median and worst relative error of predicted vs measured latency.
2. *Pareto* (batch 1): the DeepMAD score against measured latency of hand-written
   torchvision-style ResNet-18/34/50 (``tests/models/cifar.py``; their scores are those of the
   equivalent specs, the max-pool standing in as the first stage's stride), the released
   DeepMAD R18/R34/R50, MACs-only designs at the ResNets' MACs and params, and latency-aware
   designs at each ResNet's (and the released DeepMAD-R50's) *measured* latency and params:
   designed with the network-fitted profile, measured, and re-designed with the budget scaled
   by target / measured until it measures within 90-100% of the target (``--calibrations``).

Every time is the median of repeated forward passes (inference, warm-ups first) on this
process's device, one thread unless ``--threads``; the table heads name device, precision,
batch and resolution.

    python benchmarks/latency.py                               # both parts, CPU, batch 1 and 32
    python benchmarks/latency.py --skip-pareto --test-networks 10
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import numpy as np

sys.path.insert(0, ".")  # tests/models: the hand-written ResNets

from designer import zoo  # noqa: E402
from designer.costs import count  # noqa: E402
from designer.design import DesignError, DesignProblem, solve  # noqa: E402
from designer.design.latency import measure_ms, profile, random_spec  # noqa: E402
from designer.entropy import deepmad_scores  # noqa: E402
from designer.families import NAMES  # noqa: E402
from designer.spec import NetworkSpec, Stage, Stem  # noqa: E402
from designer.timing import median_forward_seconds  # noqa: E402


def resnet_spec(name: str) -> NetworkSpec:
    """The spec of a torchvision ResNet (the max-pool as the first stage's stride)."""
    if name == "resnet50":
        stages = [Stage("bottleneck", 256 * 2 ** i, 64 * 2 ** i, 3, L, 2) for i, L in enumerate((3, 4, 6, 3))]
    else:
        depths = (2, 2, 2, 2) if name == "resnet18" else (3, 4, 6, 3)
        stages = [Stage("basic", 64 * 2 ** i, 64 * 2 ** i, 3, L, 2) for i, L in enumerate(depths)]
    return NetworkSpec(resolution=224, stem=Stem(64, 7, 2), stages=stages, name=name)


def prediction(args, batch: int, resolution: int) -> list[str]:
    start = time.perf_counter()
    fitted = {
        "blocks (quick grid)": profile(args.device, args.precision, batch, quick=True, repeats=args.repeats),
        f"{args.fit_networks} networks": profile(args.device, args.precision, batch, networks=args.fit_networks,
                                                   resolution=resolution, seed=1, repeats=args.repeats),
    }
    rng = np.random.default_rng(2)  # held out: another seed than the fit
    specs = [random_spec(rng, NAMES[i % len(NAMES)], resolution) for i in range(args.test_networks)]
    measured = np.array([measure_ms(spec, args.device, args.precision, batch, args.repeats) for spec in specs])
    rows = [f"\nPrediction on {len(specs)} held-out random networks ({', '.join(NAMES)} in turn), {args.device} "
            f"({next(iter(fitted.values())).device}), {args.precision}, batch {batch}, {resolution}x{resolution}, "
            f"{args.threads} thread(s); measured {measured.min():.2f}-{measured.max():.2f} ms "
            f"(median {np.median(measured):.2f}); {time.perf_counter() - start:.0f} s\n",
            "| profile fitted on | fit median error | held-out median error | held-out worst error "
            "| worst per family (" + ", ".join(NAMES) + ") |", "|---|---|---|---|---|"]
    for label, model in fitted.items():
        predicted = np.array([model.predict(spec) for spec in specs])
        errors = np.abs(predicted - measured) / measured
        per_family = [100 * errors[i::len(NAMES)].max() for i in range(len(NAMES))]
        rows.append(f"| {label} | {100 * model.fit['median_error']:.1f}% | {100 * np.median(errors):.1f}% "
                    f"| {100 * errors.max():.1f}% | {' / '.join(f'{e:.0f}%' for e in per_family)} |")
    print("\n".join(rows), flush=True)
    return rows


def timed_module(factory: str, args) -> float:
    import torch

    from designer.user_model import build_user_model
    model = build_user_model(f"tests/models/cifar.py:{factory}").eval()
    x = torch.randn(1, 3, 224, 224)
    return 1e3 * median_forward_seconds(model, x, repeats=args.repeats, warmups=3)


def calibrated_design(problem: DesignProblem, target_ms: float, attempts: int, time_limit: float, measure):
    """The design of ``problem`` (latency budget ``target_ms``, modelled) re-designed with the
    budget scaled by target / measured until it measures within 90-100% of the target, at most
    ``attempts`` times (a budget below the model's smallest latency ends it). Returns the
    best-scoring result measured within the target (else the last) and its measured ms.
    ``measure``: spec -> milliseconds on the device the target was measured on."""
    budget, best, last = target_ms, None, None
    for attempt in range(attempts):
        try:
            result = solve(replace(problem, max_latency_ms=budget), time_limit=time_limit)
        except DesignError as error:
            print(f"  {problem.name}: attempt {attempt + 1}, budget {budget:.3f} ms: {error}", file=sys.stderr)
            break
        measured = measure(result.spec)
        print(f"  {problem.name}: attempt {attempt + 1}, budget {budget:.3f} ms, modelled {result.latency_ms:.3f}, "
              f"measured {measured:.3f} (target {target_ms:.3f}), score {result.score:.0f}, gap {result.solve.gap}",
              file=sys.stderr)
        last = (result, measured)
        if measured <= target_ms and (best is None or result.score > best[0].score):
            best = last
        if 0.9 * target_ms <= measured <= target_ms:
            break
        budget *= target_ms / measured  # the model is off by measured / modelled here: rescale, both ways
    if last is None:
        raise RuntimeError(f"{problem.name}: no design for a latency budget of {target_ms:.3f} ms")
    return best or last


def design_point(problem: DesignProblem, args, target_ms: float | None) -> dict:
    """A design for ``problem``, measured; with ``target_ms``, calibrated to it (:func:`calibrated_design`)."""
    def measure(spec) -> float:
        return measure_ms(spec, args.device, args.precision, 1, args.repeats)

    if target_ms:
        result, measured = calibrated_design(problem, target_ms, args.calibrations + 1, args.time_limit, measure)
    else:
        result = solve(problem, time_limit=args.time_limit)
        measured = measure(result.spec)
    return {"spec": result.spec, "score": result.score, "measured": measured, "modelled": result.latency_ms,
            "gap": result.solve.gap, "macs": result.macs, "params": result.params}


def pareto(args) -> None:
    start = time.perf_counter()
    latency_profile = profile(args.device, args.precision, 1, networks=args.fit_networks, resolution=224, seed=1,
                              repeats=args.repeats)
    rows = []
    references = {}
    for name, factory in (("resnet18", "tv_resnet18"), ("resnet34", "tv_resnet34"), ("resnet50", "tv_resnet50")):
        spec = resnet_spec(name)
        costs = count(spec)
        references[name] = {"measured": timed_module(factory, args), "macs": costs.macs, "params": costs.params}
        rows.append((f"torchvision-style {name} (hand-written)", deepmad_scores(spec).score, references[name]["measured"],
                     costs.macs, costs.params, ""))
    for name in ("deepmad-r18", "deepmad-r34", "deepmad-r50"):
        spec = zoo.load(name)
        costs = count(spec)
        rows.append((f"released {name}", deepmad_scores(spec).score, measure_ms(spec, args.device, args.precision, 1,
                                                                                 args.repeats), costs.macs,
                     costs.params, ""))
    released = zoo.load("deepmad-r50")
    references["deepmad-r50"] = {"measured": measure_ms(released, args.device, args.precision, 1, args.repeats),
                                 "macs": count(released).macs, "params": count(released).params}
    for name, ref in references.items():
        if args.only is not None and name not in args.only:
            continue
        common = dict(family="bottleneck", resolution=224, num_classes=1000, max_params=ref["params"],
                      effectiveness=0.3, strides=[2, 2, 2, 2, 1, 2])
        if not name.startswith("deepmad"):
            macs_only = design_point(DesignProblem(max_macs=ref["macs"], name=f"macs-only@{name}", **common), args,
                                     None)
            rows.append((f"MACs-only design at {name}'s MACs and params", macs_only["score"], macs_only["measured"],
                         macs_only["macs"], macs_only["params"], f"gap {100 * macs_only['gap']:.1f}%"))
        aware = design_point(DesignProblem(max_latency_ms=ref["measured"], latency_profile=latency_profile.to_dict(),
                                           name=f"latency@{name}", **common), args, ref["measured"])
        rows.append((f"latency-aware design at {name}'s measured latency and params", aware["score"],
                     aware["measured"], aware["macs"], aware["params"],
                     f"modelled {aware['modelled']:.1f} ms; gap {100 * aware['gap']:.1f}% (modelled latency)"))
    print(f"\nScore against measured latency, {latency_profile.device}, {args.precision}, batch 1, 224x224, "
          f"{args.threads} thread(s); profile fitted on {args.fit_networks} random networks (fit median error "
          f"{100 * latency_profile.fit['median_error']:.1f}%); designs {args.time_limit:g} s each; "
          f"{time.perf_counter() - start:.0f} s\n")
    print("| network | DeepMAD score | measured ms | MACs | params | notes |\n|---|---|---|---|---|---|")
    for label, score, ms, macs, params, note in rows:
        print(f"| {label} | {score:,.0f} | {ms:.1f} | {macs / 1e9:.2f} G | {params / 1e6:.1f} M | {note} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[224, 64],
                        help="input resolution of the random networks, one per batch")
    parser.add_argument("--fit-networks", type=int, default=40)
    parser.add_argument("--test-networks", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--calibrations", type=int, default=2)
    parser.add_argument("--skip-prediction", action="store_true")
    parser.add_argument("--skip-pareto", action="store_true")
    parser.add_argument("--only", nargs="*", default=None,
                        help="latency-aware targets to design for (resnet18 resnet34 resnet50 deepmad-r50; default all)")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    if not args.skip_prediction:
        for batch, resolution in zip(args.batches, args.resolutions):
            prediction(args, batch, resolution)
    if not args.skip_pareto:
        pareto(args)


if __name__ == "__main__":
    main()
