"""Solve a :class:`DesignProblem` to a proven bound.

Small spaces are solved exactly: one MILP over every grid point (:mod:`designer.design.milp`).
Large spaces (the multiples-of-8 grid up to 2048 channels) are solved by *cell refinement*,
a branch-and-bound over width ranges in which HiGHS does the branching over depths,
kernels and cell choices:

1. split every width range into a few cells (the smallest width is always a cell of its
   own); the MILP over cells, with values at each cell's widest point and costs at its
   narrowest, is a relaxation, so HiGHS's bound on it bounds the real optimum;
2. *polish*: solve the exact MILP over a sample of the grid points inside the cells the
   relaxation picked, which gives a real design (an incumbent), for at most
   ``POLISH_SHARE`` of the time limit unless it finds no design at all;
3. *neighbourhood search*: exact MILPs over the grid points next to the best design's
   widths, while they improve it, for at most ``LNS_SHARE`` of the time limit in all;
4. split the picked cells in two (geometric midpoint) and repeat, until the gap between
   the best bound and the best design is at most ``rel_gap`` or time runs out.

After the first iteration with a design, when the gap is still open, the *Lagrangian bound*
(:mod:`designer.design.lagrangian`: budgets relaxed by multipliers, a DP over exact grid
widths) runs for at most ``LAGRANGIAN_SHARE`` of the time limit, its effectiveness tangents
at the best design's layer counts; the reported bound is the smaller of the two kinds.
Every MILP starts from the best design known (a HiGHS warm start) when it lies inside its
cells, and with objective "penalised" the depth penalty's planes (D12) grow with every
solution's depths.

The caps matter more than any step: a later relaxation both lowers the bound and picks
cells a fresh polish turns into better designs than a long search around the first one.

The result reports the best design's recounted score as the objective, the smallest proven
bound, and their gap.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from designer import checks
from designer.design.lagrangian import lagrangian_bound
from designer.design.minimum import check_minima
from designer.design.search import greedy_start, local_search, make_evaluate, starting_candidate, to_spec
from designer.design.milp import Cell, Cells, Choice, build_model, extract, stage_data, start_values
from designer.design.problem import DesignError, DesignProblem, DesignResult, ceil_to, floor_to
from designer.spec import NetworkSpec
from solvers import highs
from solvers.result import SolveResult, Status, relative_gap

EXACT_LIMIT = 600  # configurations per stage up to which one exact MILP is solved
# How the time limit is shared: capped so that refinement iterates (why these values:
# benchmarks/README.md, "Design: sharing the time limit")
POLISH_SAMPLES = 6  # grid points per chosen cell in the polish MILP
POLISH_SHARE = 0.2  # of the time limit, at most, for one polish MILP
LNS_RADIUS = 1  # grid steps around each width of the incumbent in the neighbourhood MILPs
LNS_SHARE = 0.1  # of the time limit, at most, for all neighbourhood MILPs together
LAGRANGIAN_SHARE = 0.3  # of the time limit, at most, for the Lagrangian bound (after the first iteration)


def grid(lo: int, hi: int, step: int) -> list[int]:
    return list(range(ceil_to(lo, step), floor_to(hi, step) + 1, step))


def split_geometric(points: list[int], parts: int) -> list[Cell]:
    """Cells covering ``points``: the first point alone, the rest in ``parts`` geometric ranges."""
    if len(points) <= parts + 1:
        return [Cell(p, p) for p in points]
    cells, rest = [Cell(points[0], points[0])], points[1:]
    edges = [rest[0] * (rest[-1] / rest[0]) ** (i / parts) for i in range(parts + 1)]
    start = 0
    for i in range(1, parts + 1):
        end = max(start, max(idx for idx, p in enumerate(rest) if p <= edges[i] + 1e-9))
        if i == parts:
            end = len(rest) - 1
        if start <= end:
            cells.append(Cell(rest[start], rest[end]))
            start = end + 1
    return cells


def split_cell(cell: Cell, step: int) -> list[Cell]:
    if cell.is_point:
        return [cell]
    mid = floor_to(math.sqrt(cell.lo * cell.hi), step)
    mid = min(max(mid, cell.lo), cell.hi - step)
    return [Cell(cell.lo, mid), Cell(mid + step, cell.hi)]


def btn_range(problem: DesignProblem) -> tuple[int, int]:
    lo_out, hi_out = ceil_to(problem.out_widths[0], problem.width_step), floor_to(problem.out_widths[1], problem.width_step)
    return problem.btn_bounds(lo_out)[0], problem.btn_bounds(hi_out)[1]


def initial_cells(problem: DesignProblem, parts: int = 6) -> Cells:
    step = problem.width_step
    stem = split_geometric(grid(*problem.stem_widths, step), 3)
    outs = split_geometric(grid(*problem.out_widths, step), parts)
    btns = split_geometric(grid(*btn_range(problem), step), parts)
    return Cells(stem=stem, out=[list(outs) for _ in range(problem.n_stages)],
                 btn=[list(btns) for _ in range(problem.n_stages)])


def exact_cells(problem: DesignProblem) -> Cells:
    step = problem.width_step
    points = lambda lo, hi: [Cell(p, p) for p in grid(lo, hi, step)]  # noqa: E731
    return Cells(stem=points(*problem.stem_widths),
                 out=[points(*problem.out_widths) for _ in range(problem.n_stages)],
                 btn=[points(*btn_range(problem)) for _ in range(problem.n_stages)])


def exact_size(problem: DesignProblem) -> int:
    """Configurations per stage of the exact model (out x btn x k pairs in the space)."""
    outs = grid(*problem.out_widths, problem.width_step)
    return sum(len(grid(*problem.btn_bounds(c), problem.width_step)) for c in outs) * len(problem.kernels)


def choice_to_spec(problem: DesignProblem, choice: Choice) -> NetworkSpec:
    return problem.to_spec(choice.stem.lo, [(cfg.out.lo, max(cfg.btn.lo, problem.btn_bounds(cfg.out.lo)[0]),
                                             cfg.k, depth) for cfg, depth in choice.stages])


def penalty_depths(problem: DesignProblem, depths: list[int]) -> tuple[int, ...]:
    """The depths of the depth-penalty stages among every stage's ``depths``."""
    return tuple(depths[j - 1] for j in problem.penalty_stages())


def solve_cells(problem: DesignProblem, cells: Cells, time_limit: float | None, rel_gap: float, threads: int,
                objective: str = "score", start_from: NetworkSpec | None = None,
                tangents: set[tuple[int, ...]] | None = None) -> tuple[SolveResult, Choice | None]:
    """Solve the MILP over ``cells``; ``start_from``: a design HiGHS starts from (a warm start)
    when it lies inside the cells; ``tangents``: the depth vectors with planes of the depth
    penalty (objective "penalised"), to which the solution's own depths are added."""
    start = time.perf_counter()
    tangents = tangents if tangents is not None else set()
    model, stages = build_model(problem, cells, objective, sorted(tangents))
    if any(not d.configs for d in stages):
        empty = next(j for j, d in enumerate(stages, start=1) if not d.configs)
        return SolveResult(Status.INFEASIBLE, solver="highs",
                           message=f"stage {empty}: no (out, btn, k) in the space fits the activation budget"), None
    warm = start_values(model, cells, stages, start_from) if start_from is not None else None
    result = highs.solve(model, time_limit=time_limit, rel_gap=rel_gap, threads=threads, start=warm)
    result = result.replace(seconds=time.perf_counter() - start)  # model building included
    choice = extract(model, cells, stages) if result.status.has_solution else None
    if choice is not None:
        tangents.add(penalty_depths(problem, [depth for _, depth in choice.stages]))
    return result, choice


def _polish_cells(problem: DesignProblem, choice: Choice, samples: int) -> Cells:
    step = problem.width_step

    def sample(cell: Cell) -> list[Cell]:
        points = grid(cell.lo, cell.hi, step)
        if len(points) > samples:
            points = sorted({points[round(i * (len(points) - 1) / (samples - 1))] for i in range(samples)})
        return [Cell(p, p) for p in points]

    return Cells(stem=sample(choice.stem), out=[sample(cfg.out) for cfg, _ in choice.stages],
                 btn=[sample(cfg.btn) for cfg, _ in choice.stages])


def _neighbourhood(problem: DesignProblem, spec: NetworkSpec, radius: int) -> Cells:
    """Every grid point within ``radius`` steps of ``spec``'s widths (exact cells)."""
    step = problem.width_step

    def around(value: int, lo: int, hi: int) -> list[Cell]:
        return [Cell(p, p) for p in grid(max(lo, value - radius * step), min(hi, value + radius * step), step)]

    b_lo, b_hi = btn_range(problem)
    return Cells(stem=around(spec.stem.out, *problem.stem_widths),
                 out=[around(st.out, *problem.out_widths) for st in spec.stages],
                 btn=[around(st.btn, b_lo, b_hi) for st in spec.stages])


def _refine(cells: Cells, choice: Choice, step: int) -> Cells:
    def replace(group: list[Cell], picked: Cell) -> list[Cell]:
        out = []
        for cell in group:
            out.extend(split_cell(cell, step) if cell == picked else [cell])
        return out

    return Cells(stem=replace(cells.stem, choice.stem),
                 out=[replace(group, cfg.out) for group, (cfg, _) in zip(cells.out, choice.stages)],
                 btn=[replace(group, cfg.btn) for group, (cfg, _) in zip(cells.btn, choice.stages)])


def solve(problem: DesignProblem, time_limit: float = 60.0, rel_gap: float = 0.01, threads: int = 1,
          method: str = "auto", progress: Callable[[dict], None] | None = None) -> DesignResult:
    """Maximise the DeepMAD score of ``problem``; see the module docstring.

    ``method``: ``exact`` (one MILP over every grid point), ``refine`` (cell refinement) or
    ``auto`` (exact when the space has at most ``EXACT_LIMIT`` configurations per stage).
    ``progress`` is called with a dict (iteration, bound, best score, gap, seconds) per step.
    Raises :class:`DesignError` naming the budget that cannot be met when none can, and for
    bad arguments, before any solve. Feasible budgets always give a design, however short the
    time limit: a constructive design that meets every budget is the first incumbent.
    """
    check_arguments(problem, time_limit, rel_gap, threads, method)
    check_budgets(problem)
    if method == "auto":
        method = "exact" if exact_size(problem) <= EXACT_LIMIT else "refine"
    start = time.perf_counter()
    first = constructive_design(problem)
    tangents = {penalty_depths(problem, [st.L for st in first.stages])} if first is not None else set()
    if method == "exact":
        while True:
            known = set(tangents)
            remaining = time_limit - (time.perf_counter() - start)
            result, choice = solve_cells(problem, exact_cells(problem), max(remaining, 0.05), rel_gap, threads,
                                         start_from=first, tangents=tangents)
            # (D12) is exact at the solution once its depths have a plane; else add it and re-solve
            if (problem.objective != "penalised" or choice is None or tangents == known
                    or time.perf_counter() - start >= time_limit):
                break
        if result.status == Status.INFEASIBLE:
            raise DesignError(explain_infeasible(problem, threads, time_limit - (time.perf_counter() - start)))
        result = result.replace(solver="highs (exact MILP)")
        if choice is not None and problem.objective == "penalised":  # the recount, exact also if (D12) lacked a plane
            value = problem.evaluate(choice_to_spec(problem, choice))[0]
            result = result.replace(objective=value, gap=relative_gap(value, result.bound))
        if choice is None and first is not None:
            result = _constructive_result(problem, first, result, time.perf_counter() - start)
            return DesignResult.from_spec(problem, first, result)
        spec = choice_to_spec(problem, choice) if choice is not None else None
        return DesignResult.from_spec(problem, spec, result, first_design_seconds=result.seconds if spec else None)

    best = _Incumbent(problem, start, first, problem.evaluate(first)[0] if first is not None else None)
    bound, bound_by = math.inf, None
    cells, dual_done = initial_cells(problem), False
    history: list[dict[str, float]] = []
    iteration, total_size, lns_seconds = 0, {}, 0.0
    status = Status.NO_SOLUTION
    while True:
        remaining = time_limit - (time.perf_counter() - start)
        if remaining <= 0.05:
            break
        iteration += 1
        relaxed, choice = solve_cells(problem, cells, remaining, rel_gap / 4, threads, start_from=best.spec, tangents=tangents)
        total_size = relaxed.model_size
        if relaxed.status == Status.INFEASIBLE:
            if best.spec is None:
                raise DesignError(explain_infeasible(problem, threads, time_limit - (time.perf_counter() - start)))
            break  # cannot happen for a relaxation of a feasible problem; keep what we have
        if relaxed.bound is not None and relaxed.bound < bound:
            bound, bound_by = relaxed.bound, "cell relaxation"
        if choice is None:
            break  # out of time before the relaxation had a solution
        remaining = time_limit - (time.perf_counter() - start)
        if remaining > 0.05:
            polish_cells = cells if cells.exact else _polish_cells(problem, choice, samples=POLISH_SAMPLES)
            polished, polish_choice = solve_cells(problem, polish_cells, min(remaining, POLISH_SHARE * time_limit),
                                                  1e-4, threads, start_from=best.spec, tangents=tangents)
            remaining = time_limit - (time.perf_counter() - start)
            if polish_choice is None and best.first_found is None and remaining > 0.05:  # no MILP design yet: go on
                polished, polish_choice = solve_cells(problem, polish_cells, remaining, 1e-4, threads,
                                                      start_from=best.spec, tangents=tangents)
            if polish_choice is not None:
                best.offer(choice_to_spec(problem, polish_choice))
        # large-neighbourhood search: exact MILPs around the best design while they improve it
        # (capped, so the bound keeps improving too)
        while best.spec is not None and lns_seconds < LNS_SHARE * time_limit:
            remaining = min(time_limit - (time.perf_counter() - start), LNS_SHARE * time_limit - lns_seconds)
            if remaining <= 0.05:
                break
            lns_start = time.perf_counter()
            local, local_choice = solve_cells(problem, _neighbourhood(problem, best.spec, radius=LNS_RADIUS), remaining,
                                              1e-6, threads, start_from=best.spec, tangents=tangents)
            lns_seconds += time.perf_counter() - lns_start
            if local_choice is None or not best.offer(choice_to_spec(problem, local_choice), min_gain=1e-9):
                break
        gap = relative_gap(best.value, bound)
        if not dual_done and best.value is not None and (gap is None or gap > rel_gap):
            dual_done = True
            # the Lagrangian bound (designer.design.lagrangian): a bound over exact grid widths
            remaining = time_limit - (time.perf_counter() - start)
            if remaining > 0.05:
                dual = lagrangian_bound(problem, target=best.value, time_limit=min(remaining, LAGRANGIAN_SHARE * time_limit),
                                        incumbent=best.spec)
                if dual.bound < bound:
                    bound, bound_by = dual.bound, f"Lagrangian bound ({dual.evaluations} evaluations)"
                if dual.feasible is not None:  # its maximisers are designs too
                    best.offer(dual.feasible, dual.feasible_value)
            gap = relative_gap(best.value, bound)
        history.append({"iteration": iteration, "bound": bound, "score": best.value, "gap": gap,
                        "seconds": time.perf_counter() - start})
        if progress is not None:
            progress(history[-1])
        if gap is not None and gap <= rel_gap:
            status = Status.OPTIMAL
            break
        if relaxed.status == Status.OPTIMAL and problem.objective != "penalised" and all(c.is_point for c in [choice.stem]
                                                     + [x for cfg, _ in choice.stages for x in (cfg.out, cfg.btn)]):
            # the relaxation's optimum is an exact design: nothing left to refine
            if relaxed.objective < bound:
                bound, bound_by = relaxed.objective, "cell relaxation"
            status = Status.OPTIMAL
            break
        cells = _refine(cells, choice, problem.width_step)
    if best.spec is not None and status != Status.OPTIMAL:
        status = Status.FEASIBLE
    constructive = best.spec is not None and best.first_found is None
    result = SolveResult(status=status, objective=best.value, bound=None if math.isinf(bound) else bound,
                         gap=relative_gap(best.value, bound), seconds=time.perf_counter() - start,
                         solver="constructive start" if constructive else "highs (cell refinement)",
                         message=f"{iteration} refinement iterations; " + (
                             f"bound from the {bound_by}" if bound_by else "no bound proven in the time limit") + (
                             "; the MILPs found no better design in the time limit than the constructive start"
                             if constructive else ""),
                         model_size=total_size)
    return DesignResult.from_spec(problem, best.spec, result, history, best.first_found)


@dataclass
class _Incumbent:
    """The best design so far, and when a solver (not the constructive start) first gave one."""

    problem: DesignProblem
    start: float
    spec: NetworkSpec | None
    value: float | None
    first_found: float | None = None  # seconds after start

    def offer(self, spec: NetworkSpec, value: float | None = None, min_gain: float = 0.0) -> bool:
        """Keep ``spec`` if it meets every rule (recounted unless ``value`` is its known
        objective) and beats the best by more than the relative ``min_gain``."""
        if value is None:
            value, broken = self.problem.evaluate(spec)
            if broken:
                return False
        if self.value is not None and value <= self.value * (1 + min_gain):
            return False
        self.spec, self.value = spec, value
        if self.first_found is None:
            self.first_found = time.perf_counter() - self.start
        return True


def check_arguments(problem: DesignProblem, time_limit: float, rel_gap: float, threads: int, method: str) -> None:
    """Every argument of :func:`solve`, before any work: a clear DesignError naming it."""
    try:
        checks.time_limit(time_limit, "time_limit")
        checks.fraction(rel_gap, "rel_gap", include_one=False)
        checks.integer(threads, "threads", minimum=1, maximum=os.cpu_count() or 1)  # more aborts HiGHS
        checks.choice(method, "method", ("auto", "exact", "refine"))
    except ValueError as error:
        raise DesignError(str(error)) from None
    if problem.max_macs is None and problem.max_params is None:
        raise DesignError("budgets: give max_macs or max_params (or both); without either the most expressive "
                          "network is simply the largest one the space allows")


def constructive_design(problem: DesignProblem) -> NetworkSpec | None:
    """A quick design meeting every budget, or None: the evolutionary search's starting
    structure (depth 1, widths growing stage by stage, the widest that fits) improved by hill
    climbing for a fixed number of evaluations (:func:`designer.design.search.local_search`:
    a work limit, so the same design on any machine)."""
    candidates = [local_search(problem, c) for c in (starting_candidate(problem),
                                                      greedy_start(problem)) if c is not None]
    if not candidates:
        return None
    spec = to_spec(problem, max(candidates, key=make_evaluate(problem)))
    return spec if not problem.violations(spec) else None


def _constructive_result(problem: DesignProblem, spec: NetworkSpec, solver_result: SolveResult,
                         seconds: float) -> SolveResult:
    score = problem.evaluate(spec)[0]
    bound = solver_result.bound
    return SolveResult(Status.FEASIBLE, objective=score, bound=bound, gap=relative_gap(score, bound),
                       seconds=seconds, solver="constructive start",
                       message=f"the MILP ({solver_result.solver}) found no design in the time limit "
                               f"({solver_result.status}); the constructive start meets every budget",
                       model_size=solver_result.model_size)


def check_budgets(problem: DesignProblem) -> None:
    """Budgets no design can meet, proven by arithmetic before any solve (a DesignError naming
    each with its smallest value): the stem's own footprint and effectiveness, and every cost
    budget below its minimum in the space (:mod:`designer.design.minimum`)."""
    _check_fixed_parts(problem)
    check_minima(problem)


def _check_fixed_parts(problem: DesignProblem) -> None:
    """Budgets the stem alone already breaks, with the smallest value any design can have."""
    if problem.max_activation_bytes is not None:
        resolution, after = problem.resolution, problem.resolutions()[0]
        narrowest = ceil_to(problem.stem_widths[0], problem.width_step)
        stem_bytes = (problem.in_channels * resolution ** 2 + narrowest * after ** 2) * problem.bytes_per_element
        if stem_bytes > problem.max_activation_bytes:
            raise DesignError(f"max_activation_bytes: {problem.max_activation_bytes:g} is below the stem conv's own "
                              f"footprint at its narrowest width ({narrowest} channels): the smallest feasible "
                              f"budget is at least {stem_bytes:,} bytes")
    if problem.effectiveness is not None:
        rho_stem = 1 / (problem.in_channels * problem.stem_kernel ** 2)
        if rho_stem > problem.effectiveness:
            raise DesignError(f"effectiveness: the stem alone has rho {rho_stem:.4f} > {problem.effectiveness}; "
                              f"the smallest feasible effectiveness budget is {rho_stem:.4f}")


def explain_infeasible(problem: DesignProblem, threads: int = 1, time_limit: float = 30.0) -> str:
    """Why the solver proved ``problem`` infeasible: the budgets that cannot be met even alone
    (with effectiveness and the space's rules), each with its smallest value there (one
    minimising MILP per budget, all within ``time_limit`` seconds), or that they cannot be met
    together. Budgets below their minimum in the space alone were already named by
    :func:`~designer.design.minimum.check_minima` before the solve."""
    compute, size = problem.budget_names
    budgets = [("macs", "max_macs", compute), ("params", "max_params", size),
               ("layers", "max_layers", "layers"), ("latency", "max_latency_ms", "modelled milliseconds")]
    cells = initial_cells(problem)
    for j in range(1, problem.n_stages + 1):
        if not stage_data(problem, j, cells.out[j - 1], cells.btn[j - 1]).configs:
            return (f"max_activation_bytes: {problem.max_activation_bytes:g} bytes: no block of stage {j} fits it "
                    f"(the footprint of its first block's layers at the narrowest widths exceeds the budget)")
    start = time.perf_counter()
    given = [field for _, field, _ in budgets if getattr(problem, field) is not None]
    found, unsettled = [], []
    for objective, field, label in budgets:
        limit = getattr(problem, field)
        if limit is None:
            continue
        remaining = time_limit - (time.perf_counter() - start)
        if remaining <= 0.05:
            unsettled.append(field)
            continue
        others = {other: None for other in given if other != field}
        if "max_latency_ms" in others:  # the budget and its model go together
            others["latency_profile"] = None
        alone = dataclasses.replace(problem, **others)
        result, choice = solve_cells(alone, initial_cells(alone), remaining, 1e-6, threads, objective=objective)
        if result.bound is not None and result.bound > limit:
            # the minimum over cells is exact when it picked single widths, else a lower bound
            exact = result.status == Status.OPTIMAL and choice is not None and choice.stem.is_point and all(
                cfg.out.is_point and cfg.btn.is_point for cfg, _ in choice.stages)
            smallest = f"{result.bound:.4g}" if objective == "latency" else f"{math.ceil(result.bound - 1e-6):,}"
            found.append(f"{field}: the {label} budget {limit:g} cannot be met: with the effectiveness budget, the "
                         f"smallest {label} any design in the space can have is {'' if exact else 'at least '}"
                         f"{smallest}")
        elif result.status != Status.OPTIMAL:
            unsettled.append(field)
    if found:
        return "; ".join(found)
    if unsettled:
        return (f"the budgets cannot all be met together (proven by the solver); whether {', '.join(unsettled)} "
                f"alone can was not settled in the time limit")
    return ("the budgets cannot all be met together (proven by the solver), though each alone can: relax several "
            "at once, or the effectiveness budget")
