"""Solve a CP-SAT model (OR-Tools), the mapping wing's constraint solver, as ``highs.py`` solves
a pyomo model with HiGHS: the limits set, the status in our vocabulary, the model's size."""

from __future__ import annotations

from ortools.sat.python import cp_model

from solvers.result import Status

STATUS = {cp_model.OPTIMAL: Status.OPTIMAL, cp_model.FEASIBLE: Status.FEASIBLE,
          cp_model.INFEASIBLE: Status.INFEASIBLE, cp_model.UNKNOWN: Status.NO_SOLUTION,
          cp_model.MODEL_INVALID: Status.ERROR}


def run_cpsat(model: cp_model.CpModel, time_limit: float, threads: int, seed: int,
              work_limit: float | None = None) -> tuple[cp_model.CpSolver, Status, str, dict[str, int]]:
    """Solve ``model``: the solver (for its values), our status, CP-SAT's status name, the
    model's size. ``work_limit``: CP-SAT's deterministic time (the same answer on any machine,
    with one worker), besides the wall-clock ``time_limit``.

    CP-SAT's own Ctrl-C handler is off: it would end the search and return a result as if
    the time were up. Python's handler then marks the interrupt, and KeyboardInterrupt is
    raised as soon as the search returns (within ``time_limit``), so Ctrl-C is never a result."""
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit)
    if work_limit is not None:
        solver.parameters.max_deterministic_time = float(work_limit)
    solver.parameters.num_workers = threads
    solver.parameters.random_seed = seed
    solver.parameters.catch_sigint_signal = False
    code = solver.solve(model)
    proto = model.proto
    return (solver, STATUS.get(code, Status.ERROR), solver.status_name(code),
            {"variables": len(proto.variables), "constraints": len(proto.constraints)})
