"""A steady-state evolutionary search, as DeepMAD's released code (TinyNAS) runs it.

Keep a population of at most ``population_size`` scored candidates. Each step picks a
parent uniformly from the population, mutates it (the caller's ``mutate``), evaluates it
(the caller's ``evaluate``: a score, or None when a budget is broken, and the candidate is
rejected), adds it, and drops the worst once the population is full. It knows nothing of
networks: candidates are whatever ``mutate`` and ``evaluate`` understand. It proves nothing,
so its result has no bound.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from solvers.result import SolveResult, Status

Candidate = TypeVar("Candidate", bound=Hashable)


def evolve(initial: Candidate, mutate: Callable[[Candidate, random.Random], Candidate],
           evaluate: Callable[[Candidate], float | None], *, population_size: int = 256,
           time_limit: float | None = None, max_candidates: int | None = None, seed: int = 0,
           progress: Callable[[dict], None] | None = None, progress_every: int = 5000) -> SolveResult:
    """Maximise ``evaluate`` from ``initial``; stops at ``time_limit`` seconds or after
    ``max_candidates`` mutations (at least one of them must be given)."""
    if time_limit is None and max_candidates is None:
        raise ValueError("evolve: give time_limit or max_candidates")
    if population_size < 1:
        raise ValueError(f"population_size: must be at least 1, got {population_size}")
    rng = random.Random(seed)
    start = time.perf_counter()
    first = evaluate(initial)
    if first is None:
        return SolveResult(Status.NO_SOLUTION, seconds=time.perf_counter() - start, solver="evolution",
                           message="the initial candidate breaks a budget")
    population: list[tuple[float, Candidate]] = [(first, initial)]
    seen = {initial}
    candidates = feasible = 0
    best_score, best = first, initial
    while True:
        if max_candidates is not None and candidates >= max_candidates:
            break
        if time_limit is not None and time.perf_counter() - start >= time_limit:
            break
        candidates += 1
        child = mutate(rng.choice(population)[1], rng)
        if child in seen:
            continue
        seen.add(child)
        score = evaluate(child)
        if score is None:
            continue
        feasible += 1
        population.append((score, child))
        if score > best_score:
            best_score, best = score, child
        if len(population) > population_size:
            population.remove(min(population, key=lambda item: item[0]))
        if progress is not None and candidates % progress_every == 0:
            progress({"candidates": candidates, "feasible": feasible, "best": best_score,
                      "seconds": time.perf_counter() - start})
    return SolveResult(Status.FEASIBLE, objective=best_score, seconds=time.perf_counter() - start,
                       solution=best, solver="evolution",
                       message=f"{candidates} candidates, {feasible} feasible, population {len(population)}",
                       model_size={"candidates": candidates, "feasible": feasible})
