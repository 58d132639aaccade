"""The evolutionary baseline on a :class:`DesignProblem`: the authors' mutation moves,
scored analytically by the backbone's scorer (see :mod:`solvers.evolution`).

A candidate is ``(stem_width, ((out, btn, k, L), ...))``. A mutation picks two random
stages (the stem counts as one, with only its width) and changes one of out / btn / k / L:
widths times one of 1.5, 1.25, 0.8, 0.6, 0.5, rounded to the width step; L by +-1 or +-2;
k to another kernel of the space. Candidates outside the space or over a budget are rejected.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from designer.design.problem import DesignProblem, DesignResult, ceil_to, floor_to
from designer.spec import NetworkSpec
from solvers.evolution import evolve
from solvers.result import SolveResult, Status

WIDTH_FACTORS = (1.5, 1.25, 0.8, 0.6, 0.5)
DEPTH_STEPS = (-2, -1, 1, 2)

Candidate = tuple[int, tuple[tuple[int, int, int, int], ...]]


def starting_candidate(problem: DesignProblem) -> Candidate | None:
    """Where the search starts, like the authors' hand-given initial structures: depth 1
    everywhere, widths doubling stage by stage to a last width w, inner width at the
    geometric middle of its range; the widest w on the grid that meets every budget."""
    step = problem.width_step
    evaluate = make_evaluate(problem)
    ratio = (problem.btn_ratio[0] * problem.btn_ratio[1]) ** 0.5
    n = problem.n_stages
    last_widths = range(floor_to(problem.out_widths[1], step), ceil_to(problem.out_widths[0], step) - 1, -step)
    for last in last_widths:
        outs = [max(ceil_to(problem.out_widths[0], step), floor_to(last / 2 ** (n - j), step)) for j in range(1, n + 1)]
        stem = min(max(ceil_to(problem.stem_widths[0], step), floor_to(outs[0] / 2, step)), problem.stem_widths[1])
        candidate = (stem, tuple(
            (out, min(max(floor_to(ratio * out, step), problem.btn_bounds(out)[0]), problem.btn_bounds(out)[1]),
             min(problem.kernels), problem.stage_depth_bounds(j)[0]) for j, out in enumerate(outs, start=1)))
        if evaluate(candidate) is not None:
            return candidate
    return None


def from_spec(spec: NetworkSpec) -> Candidate:
    return spec.stem.out, tuple((s.out, s.btn, s.k, s.L) for s in spec.stages)


def to_spec(problem: DesignProblem, candidate: Candidate) -> NetworkSpec:
    return problem.to_spec(candidate[0], list(candidate[1]))


def make_mutate(problem: DesignProblem) -> Callable[[Candidate, random.Random], Candidate]:
    step = problem.width_step

    def scale(width: int, rng: random.Random) -> int:
        return max(step, int(round(width * rng.choice(WIDTH_FACTORS) / step)) * step)

    def mutate(candidate: Candidate, rng: random.Random) -> Candidate:
        stem, stages = candidate[0], [list(s) for s in candidate[1]]
        for index in rng.sample(range(problem.n_stages + 1), 2):
            if index == 0:
                stem = scale(stem, rng)
                continue
            stage = stages[index - 1]
            gene = rng.randrange(4)
            if gene in (0, 1):
                stage[gene] = scale(stage[gene], rng)
            elif gene == 2:
                stage[2] = rng.choice(problem.kernels)
            else:
                stage[3] += rng.choice(DEPTH_STEPS)
        return stem, tuple(tuple(s) for s in stages)

    return mutate


def make_evaluate(problem: DesignProblem) -> Callable[[Candidate], float | None]:
    stem_lo, stem_hi = problem.stem_widths
    out_lo, out_hi = problem.out_widths

    def evaluate(candidate: Candidate) -> float | None:
        stem, stages = candidate
        if not stem_lo <= stem <= stem_hi or any(not out_lo <= s[0] <= out_hi for s in stages):
            return None
        if any(s[3] < 1 or s[1] < 1 for s in stages):
            return None
        score, broken = problem.evaluate(to_spec(problem, candidate))
        return None if broken else score

    return evaluate


def evolutionary_search(problem: DesignProblem, time_limit: float | None = 60.0, max_candidates: int | None = None,
                        seed: int = 0, population_size: int = 256, initial: NetworkSpec | None = None,
                        progress: Callable[[dict], None] | None = None) -> DesignResult:
    start = from_spec(initial) if initial is not None else starting_candidate(problem)
    if start is None:
        return DesignResult.from_spec(problem, None, SolveResult(
            Status.NO_SOLUTION, solver="evolution", message="no starting structure meets the budgets"))
    result = evolve(start, make_mutate(problem), make_evaluate(problem), population_size=population_size,
                    time_limit=time_limit, max_candidates=max_candidates, seed=seed, progress=progress)
    spec = to_spec(problem, result.solution) if result.solution is not None else None
    return DesignResult.from_spec(problem, spec, result)
