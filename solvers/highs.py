"""Solve a pyomo model with HiGHS, the project's default MIP/LP solver.

Uses pyomo's newer solver interface (``pyomo.contrib.solver``, solver ``"highs"`` over
highspy), which takes ``time_limit`` and ``rel_gap`` per solve. The older ``appsi_highs``
overwrites a time limit set on its config inside ``solve()`` and was seen to hang.

HiGHS keeps one thread scheduler per process: once started with n threads, a solve that
asks for another count returns "unknown" without solving. :func:`solve` resets the
scheduler whenever the requested count changes, so callers may vary ``threads`` freely.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Any

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition
from pyomo.contrib.solver.solvers.highs import Highs as _PyomoHighs

from solvers.result import SolveResult, Status, relative_gap

_scheduler_threads: int | None = None


def _ensure_threads(threads: int) -> None:
    global _scheduler_threads
    if _scheduler_threads is not None and _scheduler_threads != threads:
        highspy.Highs.resetGlobalScheduler(True)
    _scheduler_threads = threads


class _Highs(_PyomoHighs):
    """pyomo's HiGHS interface plus a starting solution: HiGHS's ``setSolution`` on the model
    pyomo built, which pyomo's own options do not reach. A partial start (values of some
    variables) is completed by HiGHS; one that is infeasible is ignored by it."""

    def __init__(self, start: list[tuple[Any, float]] | None = None, deadline: float | None = None, **kwargs):
        super().__init__(**kwargs)
        # pyomo's set_instance re-runs __init__ without arguments (_reinit): keep the start
        self._warm_start = start if start is not None else getattr(self, "_warm_start", [])
        self._deadline = deadline if deadline is not None else getattr(self, "_deadline", None)

    def _solve(self):
        if self._deadline is not None:
            # HiGHS's clock starts only now: the time pyomo spent handing it the model (a second
            # or more for a large model on a busy machine) comes off its time limit
            self._active_config.time_limit = max(self._deadline - time.perf_counter(), 0.01)
        if self._warm_start:
            columns = self._pyomo_var_to_solver_var_map
            pairs = [(columns[id(var)], float(value)) for var, value in self._warm_start if id(var) in columns]
            if pairs:
                index, value = zip(*pairs)
                self._solver_model.setSolution(len(index), np.array(index, dtype=np.int32), np.array(value))
        return super()._solve()


@contextmanager
def _interrupt_after():
    """Ctrl-C during a HiGHS solve raises KeyboardInterrupt once the solve returns (within its
    time limit). Left alone, the interrupt surfaces inside HiGHS's log callback, which HiGHS
    turns into a "solve error" and swallows: the command would carry on as if nothing happened."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


def model_size(model: pyo.ConcreteModel) -> dict[str, int]:
    variables = list(model.component_data_objects(pyo.Var, active=True, descend_into=True))
    return {
        "variables": len(variables),
        "integer_variables": sum(1 for v in variables if v.is_integer() or v.is_binary()),
        "constraints": sum(1 for _ in model.component_data_objects(pyo.Constraint, active=True, descend_into=True)),
    }


def solve(model: pyo.ConcreteModel, *, time_limit: float | None = None, rel_gap: float = 1e-4,
          threads: int = 1, seed: int = 0, presolve: bool = True, verbose: bool = False,
          options: dict[str, Any] | None = None, start: list[tuple[Any, float]] | None = None) -> SolveResult:
    """Solve ``model``; on a returned solution its variables hold the incumbent.

    ``time_limit`` in seconds (None: none); ``rel_gap``: stop once the relative MIP gap is
    at most this; ``seed``: HiGHS's ``random_seed``, so runs are reproducible; ``options``:
    further HiGHS options by name; ``start``: (pyomo variable, value) pairs of a known solution
    (a warm start, possibly partial). The result's objective, bound and gap are HiGHS's own.
    """
    if time_limit is not None and time_limit <= 0:
        raise ValueError(f"time_limit: must be positive seconds, got {time_limit}")
    if not 0 <= rel_gap < 1:
        raise ValueError(f"rel_gap: must be in [0, 1), got {rel_gap}")
    if threads < 1:
        raise ValueError(f"threads: must be at least 1, got {threads}")
    _ensure_threads(threads)
    solver = _Highs(start, deadline=None if time_limit is None else time.perf_counter() + time_limit)
    solver_options = {"random_seed": seed, "presolve": "on" if presolve else "off"}
    solver_options.update(options or {})
    kwargs: dict[str, Any] = {"rel_gap": rel_gap, "threads": threads, "tee": verbose, "load_solutions": False,
                              "raise_exception_on_nonoptimal_result": False, "solver_options": solver_options}
    if time_limit is not None:
        kwargs["time_limit"] = time_limit
    start = time.perf_counter()
    with _interrupt_after():
        results = solver.solve(model, **kwargs)
    seconds = time.perf_counter() - start

    term, sol = results.termination_condition, results.solution_status
    highs_model = getattr(solver, "_solver_model", None)  # the highspy object pyomo drove
    has_solution = sol in (SolutionStatus.optimal, SolutionStatus.feasible)
    if term == TerminationCondition.convergenceCriteriaSatisfied and has_solution:
        status = Status.OPTIMAL
    elif term in (TerminationCondition.provenInfeasible, TerminationCondition.locallyInfeasible,
                  TerminationCondition.infeasibleOrUnbounded):
        status = Status.INFEASIBLE
    elif term == TerminationCondition.unbounded:
        status = Status.UNBOUNDED
    elif term in (TerminationCondition.maxTimeLimit, TerminationCondition.iterationLimit,
                  TerminationCondition.interrupted, TerminationCondition.objectiveLimit,
                  TerminationCondition.minStepLength):
        status = Status.FEASIBLE if has_solution else Status.NO_SOLUTION
    else:
        status = Status.ERROR
    if has_solution:
        results.solution_loader.load_vars()

    objective = results.incumbent_objective if has_solution else None
    bound = results.objective_bound
    if bound is not None and abs(bound) == float("inf"):
        bound = None
    info = highs_model.getInfo() if highs_model is not None else None
    if info is not None and has_solution and info.mip_node_count >= 0:
        gap = float(info.mip_gap)  # HiGHS's own figure for a MIP
    else:
        gap = relative_gap(objective, bound)
    if gap is not None and gap == float("inf"):
        gap = None
    if objective is not None and bound is None and status == Status.OPTIMAL:
        bound = objective  # an LP: its optimum is its own bound
    if status == Status.OPTIMAL and gap is None:
        gap = relative_gap(objective, bound)
    return SolveResult(status=status, objective=objective, bound=bound, gap=gap, seconds=seconds,
                       solver="highs", message=f"HiGHS termination: {term.name}",
                       model_size=model_size(model))
