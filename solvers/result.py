"""The one result type every solver in mpdesign returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any


class Status(str, Enum):
    OPTIMAL = "optimal"            # proven optimal within the requested relative gap
    FEASIBLE = "feasible"          # a solution, not proven optimal (time or node limit)
    INFEASIBLE = "infeasible"      # proven: no solution exists
    UNBOUNDED = "unbounded"
    NO_SOLUTION = "no_solution"    # stopped (time limit) before any solution was found
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    @property
    def has_solution(self) -> bool:
        return self in (Status.OPTIMAL, Status.FEASIBLE)


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """|bound - objective| / max(|objective|, tiny): the convention HiGHS and Gurobi report."""
    if objective is None or bound is None or math.isinf(bound) or math.isnan(bound):
        return None
    return abs(bound - objective) / max(abs(objective), 1e-10)


@dataclass(frozen=True)
class SolveResult:
    """What a solve gave, exactly as the solver reported it. Immutable: a later step that
    knows more (model building time, a stronger bound) makes a new result with
    :meth:`replace`, so no report is ever edited after the fact.

    ``objective`` is the incumbent's value, ``bound`` the best proven bound on the optimum
    (an upper bound when maximising), ``gap`` their relative gap; ``solution`` is the solver's
    variable assignment, in whatever form the formulation extracts (a dict by default).
    """

    status: Status
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    seconds: float = 0.0
    solution: Any = None
    solver: str = ""
    message: str = ""
    model_size: dict[str, int] = field(default_factory=dict)

    def replace(self, **changes: Any) -> SolveResult:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"status": str(self.status), "objective": self.objective, "bound": self.bound, "gap": self.gap,
                "seconds": self.seconds, "solver": self.solver, "message": self.message,
                "model_size": dict(self.model_size)}

    def __str__(self) -> str:
        gap = "n/a" if self.gap is None else f"{100 * self.gap:.3g}%"
        return (f"{self.solver or 'solver'}: {self.status}, objective {self.objective}, bound {self.bound}, "
                f"gap {gap}, {self.seconds:.2f} s")
