"""The cell MILP: the design MILP (:mod:`designer.design.milp`) over width *cells* (ranges of
the width grid), with values at each cell's widest point and costs at its narrowest, so that
HiGHS's bound on it bounds the real optimum; over single-width cells it is exact. What the
refinement (:mod:`designer.design.solve`) and the explanation of infeasible budgets
(:mod:`designer.design.infeasible`) build and solve."""

from __future__ import annotations

import math
import time

from designer.design.milp import Cell, Cells, Choice, build_model, extract, start_values
from designer.design.problem import DesignProblem, ceil_to, floor_to
from designer.families import family
from designer.spec import NetworkSpec
from solvers import highs
from solvers.result import SolveResult, Status


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
    """The inner widths some block of some family in the space can take."""
    lo_out = ceil_to(problem.out_widths[0], problem.width_step)
    hi_out = floor_to(problem.out_widths[1], problem.width_step)
    return (min(problem.btn_bounds(lo_out, blocks)[0] for blocks in problem.block_families),
            max(problem.btn_bounds(hi_out, blocks)[1] for blocks in problem.block_families))


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


def coarse_cells(problem: DesignProblem, samples: int, keep: NetworkSpec | None = None) -> Cells:
    """``samples`` geometrically spaced grid points of every width range (exact cells), and
    ``keep``'s own widths, so that the MILP can start from that design: a restriction of the
    exact model, so every solution is a design, found in seconds."""
    step = problem.width_step

    def spread(lo: int, hi: int, kept: int | None = None) -> list[Cell]:
        points = grid(lo, hi, step)
        if len(points) > samples:
            first, last = points[0], points[-1]
            wanted = [first * (last / first) ** (i / (samples - 1)) for i in range(samples)]
            points = sorted({min(points, key=lambda p: abs(p - w)) for w in wanted} | ({kept} - {None}))
        return [Cell(p, p) for p in points]

    b_lo, b_hi = btn_range(problem)
    stages = keep.stages if keep is not None else [None] * problem.n_stages
    return Cells(stem=spread(*problem.stem_widths, keep.stem.out if keep is not None else None),
                 out=[spread(*problem.out_widths, st and st.out) for st in stages],
                 btn=[spread(b_lo, b_hi, st and st.btn) for st in stages])


def exact_size(problem: DesignProblem) -> int:
    """Configurations per stage of the exact model (out x btn x k x family in the space)."""
    outs = grid(*problem.out_widths, problem.width_step)
    return sum(len(grid(*problem.btn_bounds(c, blocks), problem.width_step)) * len(problem.kernels_of(blocks))
               for blocks in problem.block_families for c in outs)


def choice_to_spec(problem: DesignProblem, choice: Choice) -> NetworkSpec:
    """The design at the narrowest widths of the cells a solution picked (its own widths when
    the cells are single widths)."""
    def btn(cfg) -> int:
        return max(cfg.btn.lo, problem.btn_bounds(cfg.out.lo, family(cfg.family))[0])

    return problem.to_spec(choice.stem.lo, [(cfg.out.lo, btn(cfg), cfg.k, depth, cfg.family)
                                            for cfg, depth in choice.stages])


def penalty_depths(problem: DesignProblem, depths: list[int]) -> tuple[int, ...]:
    """The depths of the depth-penalty stages among every stage's ``depths``."""
    return tuple(depths[j - 1] for j in problem.penalty_stages())


def solve_cells(problem: DesignProblem, cells: Cells, time_limit: float | None, rel_gap: float, threads: int,
                objective: str = "score", start_from: NetworkSpec | None = None,
                tangents: set[tuple[int, ...]] | None = None,
                timings: dict[str, float] | None = None) -> tuple[SolveResult, Choice | None]:
    """Solve the MILP over ``cells``; ``start_from``: a design HiGHS starts from (a warm start)
    when it lies inside the cells; ``tangents``: the depth vectors with planes of the depth
    penalty (objective "penalised"), to which the solution's own depths are added; ``timings``
    gets the seconds building the model took (``"build"``), which no time limit can cut short."""
    start = time.perf_counter()
    tangents = tangents if tangents is not None else set()
    model, stages = build_model(problem, cells, objective, sorted(tangents))
    if timings is not None:
        timings["build"] = time.perf_counter() - start
    if any(not d.configs for d in stages):
        empty = next(j for j, d in enumerate(stages, start=1) if not d.configs)
        return SolveResult(Status.INFEASIBLE, solver="highs",
                           message=f"stage {empty}: no (out, btn, k) in the space fits the activation budget"), None
    warm = start_values(model, cells, stages, start_from) if start_from is not None else None
    if time_limit is not None:  # the time limit covers building the model too
        time_limit = max(time_limit - (time.perf_counter() - start), 0.01)
    result = highs.solve(model, time_limit=time_limit, rel_gap=rel_gap, threads=threads, start=warm)
    result = result.replace(seconds=time.perf_counter() - start)  # model building included
    choice = extract(model, cells, stages) if result.status.has_solution else None
    if choice is not None:
        tangents.add(penalty_depths(problem, [depth for _, depth in choice.stages]))
    return result, choice


def polish_cells(problem: DesignProblem, choice: Choice, samples: int) -> Cells:
    step = problem.width_step

    def sample(cell: Cell) -> list[Cell]:
        points = grid(cell.lo, cell.hi, step)
        if len(points) > samples:
            points = sorted({points[round(i * (len(points) - 1) / (samples - 1))] for i in range(samples)})
        return [Cell(p, p) for p in points]

    return Cells(stem=sample(choice.stem), out=[sample(cfg.out) for cfg, _ in choice.stages],
                 btn=[sample(cfg.btn) for cfg, _ in choice.stages])


def neighbourhood(problem: DesignProblem, spec: NetworkSpec, radius: int) -> Cells:
    """Every grid point within ``radius`` steps of ``spec``'s widths (exact cells)."""
    step = problem.width_step

    def around(value: int, lo: int, hi: int) -> list[Cell]:
        return [Cell(p, p) for p in grid(max(lo, value - radius * step), min(hi, value + radius * step), step)]

    b_lo, b_hi = btn_range(problem)
    return Cells(stem=around(spec.stem.out, *problem.stem_widths),
                 out=[around(st.out, *problem.out_widths) for st in spec.stages],
                 btn=[around(st.btn, b_lo, b_hi) for st in spec.stages])


def refine(cells: Cells, choice: Choice, step: int) -> Cells:
    def replace(group: list[Cell], picked: Cell) -> list[Cell]:
        out = []
        for cell in group:
            out.extend(split_cell(cell, step) if cell == picked else [cell])
        return out

    return Cells(stem=replace(cells.stem, choice.stem),
                 out=[replace(group, cfg.out) for group, (cfg, _) in zip(cells.out, choice.stages)],
                 btn=[replace(group, cfg.btn) for group, (cfg, _) in zip(cells.btn, choice.stages)])
