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

from designer.costs import count
from designer.design.problem import DesignError, DesignProblem, DesignResult, ceil_to, floor_to
from designer.spec import NetworkSpec
from solvers.evolution import evolve
from solvers.result import SolveResult, Status

WIDTH_FACTORS = (1.5, 1.25, 0.8, 0.6, 0.5)
DEPTH_STEPS = (-2, -1, 1, 2)

Candidate = tuple[int, tuple[tuple[int, int, int, int], ...]]


GROWTH = (2.0, 1.5, 1.25, 1.0)  # width ratios between consecutive stages the starting structures try
LOCAL_SEARCH_EVALUATIONS = 4000  # a work limit (about 0.4 s at ImageNet sizes), not a clock: the same everywhere


def starting_candidate(problem: DesignProblem, narrowest: bool = False) -> Candidate | None:
    """Where the search starts, like the authors' hand-given initial structures: depth 1
    everywhere, widths growing by a fixed ratio stage by stage to a last width w (doubling, as
    theirs, or slower: fast growth leaves the early stages too narrow for the effectiveness
    budget on small images), inner width at the geometric middle of its range; for each ratio
    the widest w on the grid that meets every budget (the narrowest with ``narrowest``), and
    the best scoring of those."""
    step = problem.width_step
    evaluate = make_evaluate(problem)
    ratio = (problem.btn_ratio[0] * problem.btn_ratio[1]) ** 0.5
    n = problem.n_stages
    last_widths = list(range(floor_to(problem.out_widths[1], step), ceil_to(problem.out_widths[0], step) - 1, -step))
    best, best_score = None, None
    for growth in GROWTH:
        for last in reversed(last_widths) if narrowest else last_widths:
            outs = [max(ceil_to(problem.out_widths[0], step), floor_to(last / growth ** (n - j), step))
                    for j in range(1, n + 1)]
            stem = min(max(ceil_to(problem.stem_widths[0], step), floor_to(outs[0] / 2, step)), problem.stem_widths[1])
            candidate = (stem, tuple(
                (out, min(max(floor_to(ratio * out, step), problem.btn_bounds(out)[0]), problem.btn_bounds(out)[1]),
                 min(problem.kernels), problem.stage_depth_bounds(j)[0]) for j, out in enumerate(outs, start=1)))
            score = evaluate(candidate)
            if score is not None:
                if best_score is None or score > best_score:
                    best, best_score = candidate, score
                break
    return best


def greedy_ascent(problem: DesignProblem, candidate: Candidate,
                  max_evaluations: int = LOCAL_SEARCH_EVALUATIONS) -> Candidate:
    """Grow ``candidate`` (a small design) by the move that buys the most score per unit of
    budget it spends (the largest of its costs, each as a fraction of its budget), while some
    move raises the score within every budget: the greedy rule for knapsacks. Deterministic
    and bounded by ``max_evaluations``, not by a clock."""
    evaluate = make_evaluate(problem)
    used = _budget_use(problem)
    score, spent = evaluate(candidate), used(candidate)
    evaluations = 1
    while score is not None and evaluations < max_evaluations:
        best, best_rate = None, 0.0
        for move in _moves(problem, candidate):
            value = evaluate(move)
            evaluations += 1
            if value is not None and value > score:
                cost = used(move)
                rate = (value - score) / max(cost - spent, 1e-12)
                if rate > best_rate:
                    best, best_rate = (move, value, cost), rate
        if best is None:
            break
        candidate, score, spent = best
    return candidate


def greedy_start(problem: DesignProblem) -> Candidate | None:
    """:func:`greedy_ascent` from the narrowest starting structure that meets every budget."""
    small = starting_candidate(problem, narrowest=True)
    return None if small is None else greedy_ascent(problem, small)


def _budget_use(problem: DesignProblem) -> Callable[[Candidate], float]:
    """The largest fraction of a MACs or parameter budget a candidate uses."""

    def used(candidate: Candidate) -> float:
        compute, size = count(to_spec(problem, candidate)).budget(problem.counting)
        return max(compute / problem.max_macs if problem.max_macs else 0.0,
                   size / problem.max_params if problem.max_params else 0.0)

    return used


def local_search(problem: DesignProblem, candidate: Candidate,
                 max_evaluations: int = LOCAL_SEARCH_EVALUATIONS) -> Candidate:
    """Hill climbing from ``candidate``: take the first move that raises the score (a width or
    inner width one grid step or a quarter up or down, a depth one up or down, another kernel,
    the stem's width), until no move does or ``max_evaluations`` designs were scored.
    Deterministic and bounded by work, so its answer does not depend on the machine."""
    evaluate = make_evaluate(problem)
    score = evaluate(candidate)
    evaluations = 1
    improved = score is not None
    while improved and evaluations < max_evaluations:
        improved = False
        for move in _moves(problem, candidate):
            value = evaluate(move)
            evaluations += 1
            if value is not None and value > score * (1 + 1e-12):
                candidate, score, improved = move, value, True
                break
            if evaluations >= max_evaluations:
                break
    return candidate


def _moves(problem: DesignProblem, candidate: Candidate):
    """Every single change of one gene of ``candidate``, depths first (the cheapest to try)."""
    step = problem.width_step

    def widths(value: int) -> list[int]:
        near = {value + step, value - step, ceil_to(value * 1.25, step), floor_to(value * 0.8, step)}
        return sorted(w for w in near - {value} if w >= step)

    def replace(j: int, gene: int, value: int) -> Candidate:
        stage = list(stages[j])
        stage[gene] = value
        return stem, stages[:j] + (tuple(stage),) + stages[j + 1:]

    stem, stages = candidate
    for j, (out, btn, k, depth) in enumerate(stages):
        yield from (replace(j, 3, d) for d in (depth + 1, depth - 1))
        yield from (replace(j, 0, w) for w in widths(out))
        yield from (replace(j, 1, w) for w in widths(btn))
        yield from (replace(j, 2, other) for other in problem.kernels if other != k)
    yield from ((w, stages) for w in widths(stem))


def constructive_design(problem: DesignProblem) -> NetworkSpec | None:
    """A quick design meeting every budget, or None: the better of the starting structure
    (:func:`starting_candidate`) and the greedy ascent from the narrowest one
    (:func:`greedy_start`), each improved by :func:`local_search`; all under fixed numbers of
    evaluations (work limits), so the same design on any machine. The design solve's first
    incumbent and the evolutionary search's start. With several families: the best of the
    designs built for each family alone (each one a design of the mixed space)."""
    if problem.mixed:
        designs = [spec for spec in (constructive_design(problem.restricted(blocks.name))
                                     for blocks in problem.block_families) if spec is not None]
        return max(designs, key=lambda spec: problem.evaluate(spec)[0], default=None)
    candidates = [local_search(problem, c) for c in (starting_candidate(problem),
                                                      greedy_start(problem)) if c is not None]
    if not candidates:
        return None
    spec = to_spec(problem, max(candidates, key=make_evaluate(problem)))
    return spec if not problem.violations(spec) else None


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
    if problem.mixed:  # the authors' mutations change widths, kernels and depths, never a family
        raise DesignError("families: the evolutionary search designs one family; give one family")
    start = from_spec(initial) if initial is not None else starting_candidate(problem)
    if start is None:
        return DesignResult.from_spec(problem, None, SolveResult(
            Status.NO_SOLUTION, solver="evolution", message="no starting structure meets the budgets"))
    result = evolve(start, make_mutate(problem), make_evaluate(problem), population_size=population_size,
                    time_limit=time_limit, max_candidates=max_candidates, seed=seed, progress=progress)
    spec = to_spec(problem, result.solution) if result.solution is not None else None
    return DesignResult.from_spec(problem, spec, result)
