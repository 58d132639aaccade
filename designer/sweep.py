"""Sweeps: many design or mapping problems, solved on a Dask cluster or one after another.

A sweep is data (a JSON file):

    {"kind": "design", "time_limit": 20,
     "base": {"family": "bottleneck", "resolution": 32, "num_classes": 10, "max_params": 2e5},
     "grid": {"max_macs": [5e6, 1e7, 2e7]}}

    {"kind": "mapping", "time_limit": 20,
     "base": {"graph": "graph.json", "strategy": "cpsat", "weights": false},
     "grid": {"scratchpad": ["M_R", "M_H", 65536], "objective": ["offchip", "dram"]}}

``base`` is a :class:`~designer.design.DesignProblem` (design) or a graph file and mapping
options (mapping); ``grid`` maps field names to values and the sweep solves every combination
(a Cartesian product, in row-major order). Each task is plain data, so it travels to a worker
as JSON-like dicts; every task gets one solver thread (Dask workers are started with one
thread each), so a task's answer does not depend on where it ran. Mapping graphs are read on
the client and sent to the workers, so a remote cluster needs no shared file system.

``run_sweep(sweep)`` uses a local Dask cluster; ``scheduler="tcp://host:8786"`` a running one;
``scheduler="serial"`` no Dask at all. Results come back in task order.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from designer import checks
from designer.errors import Error
from solvers.parallel import run_all

KINDS = ("design", "mapping")
MAPPING_GRID = {"scratchpad", "strategy", "objective", "order"}  # MappingProblem's fields a grid may vary
MAPPING_BASE = MAPPING_GRID | {"graph", "weights", "bytes_per_element", "max_reloads"}
REPLACED = {"mode": "strategy divide or order given", "solver": "strategy ilp or cpsat"}


class SweepError(Error, ValueError):
    """A sweep that cannot run as given; the message names the field."""


@dataclass
class Sweep:
    kind: str
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    time_limit: float = 20.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SweepError(f"kind: must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not isinstance(self.base, dict):
            raise SweepError("base: must be an object of problem fields")
        if not isinstance(self.grid, dict) or not all(isinstance(v, list) and v for v in self.grid.values()):
            raise SweepError("grid: must map each field to a non-empty list of values")
        for name, values in self.grid.items():
            repeated = [v for i, v in enumerate(values) if v in values[:i]]
            if repeated:
                raise SweepError(f"grid: {name} lists {repeated[0]!r} twice (every point is solved once)")
        try:
            checks.time_limit(self.time_limit, "time_limit")
        except ValueError as error:
            raise SweepError(str(error)) from None
        if self.kind == "design":
            from designer.design.problem import DesignProblem
            unknown = sorted((set(self.base) | set(self.grid)) - set(DesignProblem.__dataclass_fields__))
            if unknown:
                raise SweepError(f"design sweep: unknown problem field(s) {', '.join(unknown)}")
        else:
            replaced = sorted((set(self.base) | set(self.grid)) & set(REPLACED))
            if replaced:
                raise SweepError(f"mapping sweep: {replaced[0]} was replaced by {REPLACED[replaced[0]]}")
            unknown = sorted((set(self.base) - MAPPING_BASE) | (set(self.grid) - MAPPING_GRID))
            if unknown:
                raise SweepError(f"mapping sweep: unknown field(s) {', '.join(unknown)} (base: "
                                 f"{', '.join(sorted(MAPPING_BASE))}; grid: {', '.join(sorted(MAPPING_GRID))})")
            if "graph" not in self.base:
                raise SweepError("mapping sweep: base.graph (a graph or spec file) is required")
        self.validate_points()

    def validate_points(self) -> None:
        """Every grid point is a valid problem: checked here, before any task runs."""
        if self.kind == "design":
            self.design_problems()
            return
        from designer.mapping.core.objective import objective_named
        from designer.mapping.problem import check_scratchpad
        from designer.mapping.strategies import ORDERS, check_strategy
        try:
            checks.readable_file(self.base["graph"], "base.graph")
            if not isinstance(self.base.get("weights", False), bool):  # "no" is a string, and truthy
                raise ValueError(f"base.weights: must be true or false, got {self.base['weights']!r}")
            checks.integer(self.base.get("bytes_per_element", 1), "base.bytes_per_element", minimum=1)
            checks.integer(self.base.get("max_reloads", 2), "base.max_reloads", minimum=0)
            for point in self.points():
                fields = {**self.base, **point}
                where = f"grid point {point}: " if point else ""
                try:
                    check_scratchpad(fields.get("scratchpad", "M_H"))
                    objective_named(fields.get("objective", "offchip"))
                    checks.choice(fields.get("order", "free"), "order", ORDERS)
                    check_strategy(fields.get("strategy", "cpsat"), fields.get("order", "free"),
                                   fields.get("objective", "offchip"))
                except ValueError as error:
                    raise ValueError(f"{where}{error}") from None
        except ValueError as error:
            raise SweepError(f"mapping sweep: {error}") from None

    def design_problems(self) -> list[Any]:
        from designer.design.problem import DesignError, DesignProblem
        problems = []
        for point in self.points():
            try:
                problems.append(DesignProblem.from_dict({**self.base, **point}))
            except (DesignError, TypeError) as error:
                raise SweepError(f"grid point {point}: {error}") from None
        return problems

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values, in row-major order."""
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def tasks(self) -> list[dict[str, Any]]:
        """One self-contained payload per grid point (mapping graphs read here, once)."""
        if self.kind == "design":
            return [{"kind": "design", "point": point, "problem": problem.to_dict(), "time_limit": self.time_limit}
                    for point, problem in zip(self.points(), self.design_problems())]
        from designer.mapping import budgets, load
        graph = load(self.base["graph"], weights=self.base.get("weights", False),
                     bytes_per_element=self.base.get("bytes_per_element", 1))
        limits = budgets(graph, time_limit=min(20.0, self.time_limit))  # once per sweep, not per task
        fields = {key: value for key, value in self.base.items() if key in MAPPING_GRID | {"max_reloads"}}
        return [{"kind": "mapping", "point": point, "graph": graph.to_dict(), "time_limit": self.time_limit,
                 "budgets": asdict(limits), "problem": {**fields, **point},
                 "scratchpad_bytes": limits.bytes_of({**fields, **point}.get("scratchpad", "M_H"))}
                for point in self.points()]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sweep:
        if not isinstance(data, dict):
            raise SweepError(f"sweep: expected a JSON object with kind, base, grid and time_limit, got a "
                             f"{type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise SweepError(f"sweep: unknown field(s) {', '.join(unknown)}")
        missing = sorted({"kind", "base"} - set(data))
        if missing:
            raise SweepError(f"sweep: missing field(s) {', '.join(missing)}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> Sweep:
        try:
            data = checks.load_json(path, "sweep")
        except ValueError as error:
            raise SweepError(str(error)) from None
        return cls.from_dict(data)


def solve_task(task: dict[str, Any]) -> dict[str, Any]:
    """Solve one task (on a worker or here) with one solver thread; a JSON-ready result. A point
    that cannot be solved is a row too: status ``infeasible`` (budgets that cannot be met, a
    scratchpad below M_R) or ``error``, with the message, so one point never costs the others."""
    from designer.design.problem import DesignError
    from designer.mapping.problem import MappingError
    try:
        return _solve_task(task)
    except (DesignError, MappingError) as error:  # every point was checked as a problem before: these are verdicts
        return _failed(task, "infeasible", str(error))
    except Exception as error:  # noqa: BLE001 - one point's failure is that point's row, never the sweep's end
        return _failed(task, "error", f"{type(error).__name__}: {error}")


def _failed(task: dict[str, Any], status: str, message: str) -> dict[str, Any]:
    row = {"point": task["point"], "status": status, "message": " ".join(message.split())}
    if task["kind"] == "mapping":
        row["scratchpad_bytes"] = task.get("scratchpad_bytes")
    return row


def _solve_task(task: dict[str, Any]) -> dict[str, Any]:
    if task["kind"] == "design":
        from designer.design.problem import DesignProblem
        from designer.design.solve import solve
        result = solve(DesignProblem.from_dict(task["problem"]), time_limit=task["time_limit"], threads=1)
        data = result.to_dict()
        data.pop("format_version")  # the sweep file carries it once
        return {"point": task["point"], **data}
    from designer.mapping import Budgets, MappingProblem, TensorGraph
    from designer.mapping.stages import solve as solve_mapping
    problem = MappingProblem(TensorGraph.from_dict(task["graph"]), **task["problem"], time_limit=task["time_limit"],
                             threads=1, budgets=Budgets(**task["budgets"]))
    result = solve_mapping(problem)
    return {"point": task["point"], "scratchpad_bytes": problem.scratchpad_bytes, "budgets": problem.budgets.to_dict(),
            "status": str(result.solve.status), "objective": result.solve.objective,
            "objective_name": problem.objective.name, "offchip_bytes": result.offchip_bytes,
            "dram_bytes": result.dram_bytes, "bound": result.solve.bound,
            "gap": result.solve.gap, "seconds": result.solve.seconds, "baselines": result.baseline_costs(),
            "valid": bool(result.replay) if result.replay is not None else None, "message": result.solve.message}


def sweep_payload(sweep: Sweep, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``sweep --out`` writes and ``--json`` prints (``designer.schemas.SweepFile``)."""
    from designer.schemas import FORMAT_VERSION
    return {"format_version": FORMAT_VERSION, "kind": sweep.kind, "time_limit": sweep.time_limit, "rows": rows}


def run_sweep(sweep: Sweep, scheduler: str | None = None, workers: int = 2,
              progress: Callable[[int, int, dict], None] | None = None) -> list[dict[str, Any]]:
    """Solve every task of ``sweep``; results in task order.

    ``scheduler``: None for a local Dask cluster of ``workers`` single-threaded processes, an
    address (``tcp://host:8786``) for a running cluster, or ``"serial"`` to run here.
    ``progress(done, total, result)`` is called as results arrive.
    """
    tasks = sweep.tasks()
    by_point = {repr(task["point"]): task for task in tasks}

    def arrived(done: int, total: int, row: dict) -> None:
        if progress is not None:
            progress(done, total, checked_row(sweep.kind, row, by_point))

    rows = run_all(solve_task, tasks, scheduler=scheduler, workers=workers, progress=arrived)
    return [checked_row(sweep.kind, row, by_point, task) for row, task in zip(rows, tasks)]


def checked_row(kind: str, row: Any, by_point: dict[str, dict], task: dict | None = None) -> dict[str, Any]:
    """A worker's row, validated against the sweep file's row schema (a worker is another
    process, perhaps another machine: what it returns is data to check, not to trust); a row
    that is not one becomes that point's ``error`` row."""
    from pydantic import ValidationError

    from designer.schemas import SweepDesignRow, SweepFailedRow, SweepMappingRow
    point = row.get("point") if isinstance(row, dict) else None
    task = task or by_point.get(repr(point))
    if task is None:
        raise SweepError(f"a worker returned a row for no point of this sweep ({str(row)[:80]!r}); is the cluster "
                         f"one you trust?")
    if point != task["point"]:
        return _failed(task, "error", f"the worker returned a row for another point ({str(point)[:80]})")
    model = SweepFailedRow if isinstance(row, dict) and row.get("status") in ("infeasible", "error") else \
        SweepDesignRow if kind == "design" else SweepMappingRow
    try:
        model.model_validate(row)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"])) or "row"
        return _failed(task, "error", f"the worker's row is not a {kind} sweep row ({where}: {first['msg']})")
    return row
