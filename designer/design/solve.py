"""Solve a :class:`DesignProblem` to a proven bound.

Small spaces are solved exactly: one MILP over every grid point (:mod:`designer.design.milp`).
Large spaces (the multiples-of-8 grid up to 2048 channels) are solved by *cell refinement*,
a branch-and-bound over width ranges in which HiGHS does the branching over depths,
kernels and cell choices. It starts from an early incumbent: the exact MILP over
``COARSE_SAMPLES`` geometrically spaced widths per range and the constructive start's widths
(a restriction, so its solutions are designs; it starts from the constructive design), for
``COARSE_SECONDS`` (with several families, that of each family alone first), then improved by
the neighbourhood search of step 3. Then:

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
at the best design's layer counts, and what its evaluations leave of that share goes to
branching on stage depths over it (:mod:`designer.design.depth_branching`; once: resumed in
later iterations it took their time from the cells, and at DeepMAD-50M over 600 s the cells
give the better bound); the reported bound is the smaller of the two kinds.
Every MILP starts from the best design known (a HiGHS warm start) when it lies inside its
cells, and with objective "penalised" the depth penalty's planes (D12) grow with every
solution's depths.

The caps matter more than any step: a later relaxation both lowers the bound and picks
cells a fresh polish turns into better designs than a long search around the first one.

The result reports the best design's recounted score as the objective, the smallest proven
bound, and their gap.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from designer.deadline import Deadline
from designer import checks
from designer.design.cells import (
    choice_to_spec,
    coarse_cells,
    exact_cells,
    exact_size,
    initial_cells,
    neighbourhood,
    penalty_depths,
    polish_cells,
    refine,
    solve_cells,
)
from designer.design.depth_branching import depth_branching
from designer.design.infeasible import explain_infeasible
from designer.design.lagrangian import lagrangian_bound
from designer.design.milp import Cells, Choice
from designer.design.minimum import check_budgets
from designer.design.problem import DesignError, DesignProblem, DesignResult
from designer.design.search import constructive_design
from designer.spec import NetworkSpec
from solvers.result import SolveResult, Status, relative_gap

EXACT_LIMIT = 600  # configurations per stage up to which one exact MILP is solved
# How the time limit is shared: capped so that refinement iterates (why these values:
# benchmarks/README.md, "Design: sharing the time limit")
POLISH_SAMPLES = 6  # grid points per chosen cell in the polish MILP
POLISH_SHARE = 0.2  # of the time limit, at most, for one polish MILP
LNS_RADIUS = 1  # grid steps around each width of the incumbent in the neighbourhood MILPs
LNS_SHARE = 0.1  # of the time limit, at most, for all neighbourhood MILPs together
COARSE_SAMPLES = 6  # widths per range in the coarse MILP that gives the first incumbent
COARSE_SECONDS = 2.5  # for the coarse MILP (at most half the time left): the first MILP design within 5 s
LAGRANGIAN_SHARE = 0.3  # of the time limit, at most, for the Lagrangian bound (after the first iteration)
LAGRANGIAN_STEPS = 80  # Polyak steps of the root bound at most; what the share has left goes to depth branching


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
    run = _Run(problem, time_limit, rel_gap, threads, time.perf_counter())
    run.first = constructive_design(problem)
    if run.first is not None:
        run.tangents.add(penalty_depths(problem, [st.L for st in run.first.stages]))
    return _solve_exact(run) if method == "exact" else _solve_refine(run, progress)


@dataclass
class _Run:
    """One solve's settings and what its steps share: the clock, the constructive start, the
    depth-penalty planes (objective "penalised"), the best design and bound so far."""

    problem: DesignProblem
    time_limit: float
    rel_gap: float
    threads: int
    start: float
    first: NetworkSpec | None = None
    tangents: set[tuple[int, ...]] = field(default_factory=set)
    bound: float = math.inf
    bound_by: str | None = None
    lns_seconds: float = 0.0

    def remaining(self) -> float:
        return self.time_limit - (time.perf_counter() - self.start)

    def solve(self, cells: Cells, seconds: float, rel_gap: float, start_from: NetworkSpec | None,
              timings: dict[str, float] | None = None):
        return solve_cells(self.problem, cells, seconds, rel_gap, self.threads, start_from=start_from,
                           tangents=self.tangents, timings=timings)

    def infeasible(self) -> DesignError:
        return DesignError(explain_infeasible(self.problem, self.threads, self.remaining()))

    def tighten(self, bound: float | None, by: str) -> None:
        if bound is not None and bound < self.bound:
            self.bound, self.bound_by = bound, by


def _solve_exact(run: _Run) -> DesignResult:
    """One MILP over every grid point (re-solved while objective "penalised" lacks the plane of
    its solution's depths)."""
    problem = run.problem
    while True:
        known = set(run.tangents)
        result, choice = run.solve(exact_cells(problem), max(run.remaining(), 0.05), run.rel_gap, run.first)
        # (D12) is exact at the solution once its depths have a plane; else add it and re-solve
        if problem.objective != "penalised" or choice is None or run.tangents == known or run.remaining() <= 0:
            break
    if result.status == Status.INFEASIBLE:
        raise run.infeasible()
    result = result.replace(solver="highs (exact MILP)")
    if choice is not None and problem.objective == "penalised":  # the recount, exact also if (D12) lacked a plane
        value = problem.evaluate(choice_to_spec(problem, choice))[0]
        result = result.replace(objective=value, gap=relative_gap(value, result.bound))
    if choice is None and run.first is not None:
        result = _constructive_result(problem, run.first, result, time.perf_counter() - run.start)
        return DesignResult.from_spec(problem, run.first, result)
    spec = choice_to_spec(problem, choice) if choice is not None else None
    return DesignResult.from_spec(problem, spec, result, first_design_seconds=result.seconds if spec else None)


def _solve_refine(run: _Run, progress: Callable[[dict], None] | None) -> DesignResult:
    """Cell refinement (the module docstring's steps 1-4) until the gap closes or time is up."""
    problem = run.problem
    best = _Incumbent(problem, run.start, run.first, problem.evaluate(run.first)[0] if run.first else None)
    cells, dual_done, history, iteration, size = initial_cells(problem), False, [], 0, {}
    status = Status.NO_SOLUTION
    _coarse_start(run, best)
    timings = {"build": 0.0}
    # a relaxation's model takes as long to build as the last one at least (the cells only grow),
    # and building cannot be cut short: start one only when that time is left
    while run.remaining() > max(0.05, 1.2 * timings["build"]):
        iteration += 1
        relaxed, choice = run.solve(cells, run.remaining(), run.rel_gap / 4, best.spec, timings)
        size = relaxed.model_size
        if relaxed.status == Status.INFEASIBLE:
            if best.spec is None:
                raise run.infeasible()
            break  # cannot happen for a relaxation of a feasible problem; keep what we have
        run.tighten(relaxed.bound, "cell relaxation")
        if choice is None:
            break  # out of time before the relaxation had a solution
        _polish(run, best, cells, choice)
        _search_around(run, best)
        gap = relative_gap(best.value, run.bound)
        if not dual_done and best.value is not None and (gap is None or gap > run.rel_gap):
            dual_done = True
            _lagrangian(run, best)
            gap = relative_gap(best.value, run.bound)
        history.append({"iteration": iteration, "bound": run.bound, "score": best.value, "gap": gap,
                        "seconds": time.perf_counter() - run.start})
        if progress is not None:
            progress(history[-1])
        if gap is not None and gap <= run.rel_gap:
            status = Status.OPTIMAL
            break
        if relaxed.status == Status.OPTIMAL and problem.objective != "penalised" and _exact(choice):
            run.tighten(relaxed.objective, "cell relaxation")  # its optimum is a design: nothing to refine
            status = Status.OPTIMAL
            break
        cells = refine(cells, choice, problem.width_step)
    if best.spec is not None and status != Status.OPTIMAL:
        status = Status.FEASIBLE
    constructive = best.spec is not None and best.first_found is None
    result = SolveResult(status=status, objective=best.value, bound=None if math.isinf(run.bound) else run.bound,
                         gap=relative_gap(best.value, run.bound), seconds=time.perf_counter() - run.start,
                         solver="constructive start" if constructive else "highs (cell refinement)",
                         message=f"{iteration} refinement iterations; " + (
                             f"bound from the {run.bound_by}" if run.bound_by else "no bound proven in the time limit")
                         + ("; the MILPs found no better design in the time limit than the constructive start"
                            if constructive else ""),
                         model_size=size)
    return DesignResult.from_spec(problem, best.spec, result, history, best.first_found)


def _exact(choice: Choice) -> bool:
    """Whether the relaxation picked single widths everywhere (its solution is a design)."""
    return all(c.is_point for c in [choice.stem] + [x for cfg, _ in choice.stages for x in (cfg.out, cfg.btn)])


def _polish(run: _Run, best: _Incumbent, cells: Cells, choice: Choice) -> None:
    """Step 2: the exact MILP over a sample of the chosen cells' grid points (longer while no
    MILP has found a design yet)."""
    remaining = run.remaining()
    if remaining <= 0.05:
        return
    sampled = cells if cells.exact else polish_cells(run.problem, choice, samples=POLISH_SAMPLES)
    _, found = run.solve(sampled, min(remaining, POLISH_SHARE * run.time_limit), 1e-4, best.spec)
    if found is None and best.first_found is None and run.remaining() > 0.05:  # no MILP design yet: go on
        _, found = run.solve(sampled, run.remaining(), 1e-4, best.spec)
    if found is not None:
        best.offer(choice_to_spec(run.problem, found))


def _coarse_start(run: _Run, best: _Incumbent) -> None:
    """The early incumbent: the coarse MILP (widths sampled over every range), then the
    neighbourhood search around what it found. With several families, first the coarse MILP
    of each family alone (smaller, so found sooner; each a design of the mixed space), so that
    the mixed design starts from the best single-family one."""
    problem, found_any = run.problem, False
    alone = [problem.restricted(blocks.name) for blocks in problem.block_families] if problem.mixed else []
    for coarse in alone + [problem]:
        seconds = min(run.remaining() / 2, COARSE_SECONDS)
        if seconds <= 0.05:
            break
        names = {blocks.name for blocks in coarse.block_families}
        keep = best.spec if best.spec is not None and {st.family for st in best.spec.stages} <= names else None
        _, found = solve_cells(coarse, coarse_cells(coarse, COARSE_SAMPLES, keep), seconds, 1e-4, run.threads,
                               start_from=keep, tangents=run.tangents)
        if found is not None:
            best.offer(choice_to_spec(coarse, found))
            found_any = True
    if found_any:
        _search_around(run, best)
        run.lns_seconds = 0.0  # the refinement's neighbourhood searches keep their whole share


def _search_around(run: _Run, best: _Incumbent) -> None:
    """Step 3: exact MILPs around the best design while they improve it (capped, so the bound
    keeps improving too)."""
    while best.spec is not None and run.lns_seconds < LNS_SHARE * run.time_limit:
        remaining = min(run.remaining(), LNS_SHARE * run.time_limit - run.lns_seconds)
        if remaining <= 0.05:
            return
        started = time.perf_counter()
        _, found = run.solve(neighbourhood(run.problem, best.spec, radius=LNS_RADIUS), remaining, 1e-6, best.spec)
        run.lns_seconds += time.perf_counter() - started
        if found is None or not best.offer(choice_to_spec(run.problem, found), min_gain=1e-9):
            return


def _lagrangian(run: _Run, best: _Incumbent) -> None:
    """The Lagrangian bound (:mod:`designer.design.lagrangian`: over exact grid widths), once,
    then, with what is left of its share, branching on stage depths over it
    (:mod:`designer.design.depth_branching`); their feasible maximisers are designs too."""
    share = min(run.remaining(), LAGRANGIAN_SHARE * run.time_limit)
    if share <= 0.05:
        return
    deadline = Deadline.starting_now(share)
    dual = lagrangian_bound(run.problem, target=best.value, incumbent=best.spec, time_limit=share,
                            max_evaluations=LAGRANGIAN_STEPS)
    run.tighten(dual.bound, f"Lagrangian bound ({dual.evaluations} evaluations)")
    if dual.feasible is not None:
        best.offer(dual.feasible, dual.feasible_value)
    left, gap = deadline.left(), relative_gap(best.value, run.bound)
    if left <= 0.05 or gap is None or gap <= run.rel_gap:
        return
    branched = depth_branching(run.problem, dual, best.value, left, best.spec)
    run.tighten(branched.bound, f"Lagrangian bound with depth branching ({branched.boxes} boxes, "
                                f"{dual.evaluations + branched.evaluations} evaluations)")
    if branched.feasible is not None:
        best.offer(branched.feasible, branched.feasible_value)


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
    label = problem.label
    try:
        checks.time_limit(time_limit, label("time_limit"))
        checks.fraction(rel_gap, label("rel_gap"), include_one=False)
        checks.integer(threads, label("threads"), minimum=1, maximum=os.cpu_count() or 1)  # more aborts HiGHS
        checks.choice(method, label("method"), ("auto", "exact", "refine"))
    except ValueError as error:
        raise DesignError(str(error)) from None
    if problem.max_macs is None and problem.max_params is None:
        raise DesignError(f"budgets: give {label('max_macs')} or {label('max_params')} (or both); without either the "
                          f"most expressive network is simply the largest one the space allows")


def _constructive_result(problem: DesignProblem, spec: NetworkSpec, solver_result: SolveResult,
                         seconds: float) -> SolveResult:
    score = problem.evaluate(spec)[0]
    bound = solver_result.bound
    return SolveResult(Status.FEASIBLE, objective=score, bound=bound, gap=relative_gap(score, bound),
                       seconds=seconds, solver="constructive start",
                       message=f"the MILP ({solver_result.solver}) found no design in the time limit "
                               f"({solver_result.status}); the constructive start meets every budget",
                       model_size=solver_result.model_size)


