"""Design benchmark: the MILP against the released DeepMAD structures and the EA baseline.

One row per budget level: each released structure's own MACs, params and effectiveness (our
cost model) are the budgets, with its stride pattern, head conv and resolution. Columns:
the released structure's score (our scorer), the MILP's score, bound, gap and seconds, the
EA's best score at the same wall time and at ``--ea-factor`` times it, and the convex
relaxation's bound at the MILP design's depths and kernels (a bound for those depths only).

    python benchmarks/design.py                       # all levels, 60 s each
    python benchmarks/design.py --levels deepmad-r50 --time-limit 600 --ea-factor 0   # MILP only
    python benchmarks/design.py --pareto 8 --plot pareto.png
    python benchmarks/design.py --levels --families fused      # fused-MBConv at DeepMAD-R50's budgets
    python benchmarks/design.py --levels --families bottleneck basic bottleneck,basic --ea-factor 0
        # each family alone and the solver picking each stage's family, at the same budgets
    python benchmarks/design.py --levels deepmad-r18 deepmad-r34 deepmad-r50 --counting tinynas \
        --objective penalised   # the authors' budgets, counting and objective, one-to-one

With ``--counting tinynas`` the budgets are the authors' config values (FLOPs and model size as
TinyNAS counts them, effectiveness 0.3), and the released column says which it breaks.
"""

from __future__ import annotations

import argparse
import sys
import time

from designer import zoo
from designer.costs import count
from designer.design import DesignProblem, solve
from designer.design.relax import relaxation_bound
from designer.design.search import evolutionary_search
from designer.entropy import deepmad_scores

LEVELS = ["deepmad-r18", "deepmad-r34", "deepmad-r50", "deepmad-29m-224", "deepmad-50m", "deepmad-89m"]


# The DeepMAD authors' own budgets (TinyNAS configs/classification/deepmad_R*_FLOPs.py): FLOPs and
# model size as TinyNAS counts them (designer.costs), effectiveness 0.3.
TINYNAS_BUDGETS = {"deepmad-r18": (1.82e9, 11.69e6), "deepmad-r34": (3.68e9, 21.80e6),
                   "deepmad-r50": (4.13e9, 25.55e6)}


def level_problem(name: str, macs: float | None = None, family: str | None = None, objective: str = "score",
                  counting: str = "mpdesign") -> tuple[DesignProblem, float, list[str]]:
    """The level's budgets; ``family`` designs another block family under them (with that
    family's own width ratios and kernels, the level's strides, head and resolution). Our
    counting: the released structure's MACs, params and effectiveness; ``counting="tinynas"``:
    the authors' config budgets (R18, R34, R50). Also the released structure's objective value
    and the rules it breaks (the released R18 breaks its own FLOPs budget under TinyNAS's counting).
    ``family`` may name several, comma-separated: the solver picks each stage's."""
    spec = zoo.load(name)
    costs, scores = count(spec), deepmad_scores(spec)
    family = family or spec.stages[0].family
    monotone = all(a.out <= b.out for a, b in zip(spec.stages, spec.stages[1:]))
    if counting == "tinynas":
        if name not in TINYNAS_BUDGETS:
            raise SystemExit(f"--counting tinynas: the authors' budgets are known for {', '.join(TINYNAS_BUDGETS)}")
        budgets = dict(zip(("max_macs", "max_params"), TINYNAS_BUDGETS[name]), effectiveness=0.3)
    else:
        budgets = dict(max_macs=costs.macs, max_params=costs.params, effectiveness=scores.effectiveness)
    if macs is not None:
        budgets["max_macs"] = macs
    names = family.split(",")
    problem = DesignProblem(
        family=names[0], families=names if len(names) > 1 else None, resolution=spec.resolution,
        num_classes=spec.num_classes, head=spec.head,
        strides=[spec.stem.stride] + [s.stride for s in spec.stages], monotone=monotone,
        name=f"{name}-budget-{family}", objective=objective, counting=counting, **budgets)
    released, breaks = problem.evaluate(spec)
    if spec.stages[0].family not in [blocks.name for blocks in problem.block_families]:
        _, _, breaks = level_problem(name, macs, None, objective, counting)  # the rules of its own family's space
    return problem, released, breaks


def fmt(value, digits=1):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def run_level(name: str, time_limit: float, ea_factor: float, seeds: list[int], family: str | None = None,
              objective: str = "score", rel_gap: float = 0.01, counting: str = "mpdesign") -> dict:
    problem, released, released_breaks = level_problem(name, family=family, objective=objective, counting=counting)
    start = time.perf_counter()
    result = solve(problem, time_limit=time_limit, rel_gap=rel_gap,
                   progress=lambda s: print(f"  {name}: {s}", file=sys.stderr))
    violations = problem.violations(result.spec) if result.spec is not None else ["no design"]
    # the EA maximises the same objective (problem.evaluate), given the MILP's wall time; it and the
    # convex relaxation take one family
    ea_factor = 0 if problem.mixed else ea_factor
    ea_same = ([evolutionary_search(problem, time_limit=result.solve.seconds, seed=seed).score for seed in seeds]
               if ea_factor >= 1 else None)
    ea_long = (evolutionary_search(problem, time_limit=ea_factor * result.solve.seconds, seed=seeds[0])
               if ea_factor > 1 else None)
    relaxed = (relaxation_bound(problem, [s.L for s in result.spec.stages], [s.k for s in result.spec.stages])
               if result.spec is not None and not problem.mixed else None)
    value = result.solve.objective
    return {"level": name if family is None else f"{name} budgets, {family}", "released": released,
            "released_breaks": released_breaks,
            "score": result.score, "value": value, "bound": result.solve.bound,
            "gap": result.solve.gap, "seconds": result.solve.seconds, "status": result.status,
            "first": result.first_design_seconds, "bound_by": result.solve.message.split("bound from the ")[-1],
            "penalty": result.depth_penalty,
            "ea_same": ea_same, "ea_long": ea_long.score if ea_long else None,
            "relaxation": relaxed.bound if relaxed else None, "violations": violations,
            "spec": result.spec, "wall": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", nargs="*", default=LEVELS)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--ea-factor", type=float, default=10.0,
                        help="EA runs at the MILP's wall time and at this multiple of it; 1: only the first, 0: no EA")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="EA seeds (the EA at the MILP's time)")
    parser.add_argument("--rel-gap", type=float, default=0.01, help="the solve stops at this relative gap")
    parser.add_argument("--objective", default="score", choices=["score", "penalised"],
                        help="what both the MILP and the EA maximise; the table shows both objectives")
    parser.add_argument("--counting", default="mpdesign", choices=["mpdesign", "tinynas"],
                        help="tinynas: the authors' config budgets (R18, R34, R50), counted as TinyNAS does")
    parser.add_argument("--families", nargs="*", default=[],
                        help="also design these block families (e.g. fused) at the --family-levels' budgets; "
                             "a comma-separated list (bottleneck,basic) lets the solver pick each stage's")
    parser.add_argument("--family-levels", nargs="*", default=["deepmad-r50"])
    parser.add_argument("--pareto", type=int, default=0, help="points of a Pareto sweep over MACs (R50 family)")
    parser.add_argument("--pareto-time", type=float, default=20.0)
    parser.add_argument("--plot", default="pareto.png")
    args = parser.parse_args()

    common = dict(objective=args.objective, rel_gap=args.rel_gap, counting=args.counting)
    rows = [run_level(name, args.time_limit, args.ea_factor, args.seeds, **common) for name in args.levels]
    rows += [run_level(name, args.time_limit, args.ea_factor, args.seeds, family, **common)
             for family in args.families for name in args.family_levels]
    print(f"objective: {args.objective}; counting: {args.counting}; EA seeds {' '.join(map(str, args.seeds))}\n")
    print(f"| level | released ({args.objective}) | MIP {args.objective} | MIP score / depth penalty | bound | gap "
          f"| bound from | s | first MILP design s | status | EA same time (best; min-max over seeds) "
          f"| EA x{args.ea_factor:g} | relaxation bound (MIP depths) | budgets on recount |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        gap = "n/a" if r["gap"] is None else f"{100 * r['gap']:.2f}%"
        ea = ("n/a" if not r["ea_same"] else f"{fmt(max(r['ea_same']))}"
              + (f" ({fmt(min(r['ea_same']))}-{fmt(max(r['ea_same']))})" if len(r["ea_same"]) > 1 else ""))
        first = "n/a" if r["first"] is None else f"{r['first']:.1f}"
        released = fmt(r["released"]) + (f" (breaks {'; '.join(r['released_breaks'])})" if r["released_breaks"] else "")
        print(f"| {r['level']} | {released} | {fmt(r['value'])} | {fmt(r['score'])} / {fmt(r['penalty'])} "
              f"| {fmt(r['bound'])} | {gap} | {r['bound_by']} | {r['seconds']:.0f} | {first} | {r['status']} | {ea} "
              f"| {fmt(r['ea_long'])} | {fmt(r['relaxation'])} "
              f"| {'ok' if not r['violations'] else '; '.join(r['violations'])} |")
    for r in rows:
        mixed = r["spec"] is not None and len({s.family for s in r["spec"].stages}) > 1
        if r["spec"] is not None:
            stages = " ".join(f"({s.out},{s.btn},{s.k},{s.L},{s.stride}{',' + s.family if mixed else ''})"
                              for s in r["spec"].stages)
            print(f"\n{r['level']} MIP design: stem {r['spec'].stem.out}, {stages}")

    if args.pareto:
        base, _, _ = level_problem("deepmad-r50")
        points = []
        for i in range(args.pareto):
            macs = base.max_macs * (0.25 + 0.75 * i / max(1, args.pareto - 1))
            problem, _, _ = level_problem("deepmad-r50", macs=macs)
            result = solve(problem, time_limit=args.pareto_time)
            points.append((macs, result.score, result.solve.bound))
            print(f"pareto: MACs {macs:.3g} score {fmt(result.score)} bound {fmt(result.solve.bound)}", file=sys.stderr)
        print("\n| MACs budget | MIP score | bound |\n|---|---|---|")
        for macs, score, bound in points:
            print(f"| {macs:.3g} | {fmt(score)} | {fmt(bound)} |")
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([p[0] / 1e9 for p in points], [p[1] for p in points], "o-", label="MIP design")
        ax.plot([p[0] / 1e9 for p in points], [p[2] for p in points], "v--", label="proven bound")
        ax.set_xlabel("MACs budget (G)")
        ax.set_ylabel("DeepMAD score")
        ax.set_title("Score against MACs (R50 params and effectiveness budgets)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"\nplot written to {args.plot}")


if __name__ == "__main__":
    main()
