"""The result of solving a :class:`~designer.mapping.problem.MappingProblem`, built once."""

from __future__ import annotations

from dataclasses import dataclass, field
from designer.mapping.core.io import Mapping
from designer.mapping.core.simulate import Replay
from designer.mapping.problem import MappingProblem
from solvers.result import SolveResult


@dataclass(frozen=True)
class MappingResult:
    """A solved mapping problem.

    ``solve`` reports the returned ``mapping``: its status, objective (in the objective's unit),
    the best proven bound, their gap, the whole wall time, and in ``solver`` the method that
    produced it ("baseline min-peak/belady" when a baseline beat the strategy). The strategy's
    own report is ``solver_result`` (and the best bound's, ``bound_result``), untouched;
    ``replay`` is the independent simulator's verdict on the mapping."""

    problem: MappingProblem
    mapping: Mapping | None
    solve: SolveResult
    solver_result: SolveResult | None = None
    bound_result: SolveResult | None = None
    baselines: dict[str, Mapping] = field(default_factory=dict)
    replay: Replay | None = None

    @property
    def method(self) -> str:
        return self.solve.solver

    @property
    def offchip_bytes(self) -> int | None:
        """Spilled plus retrieved bytes of the mapping (COSMA's figure, whatever the objective)."""
        return None if self.mapping is None else self.mapping.offchip_bytes(self.problem.graph)

    @property
    def dram_bytes(self) -> dict[str, int] | None:
        """What a DRAM sees: the compulsory first loads and final writes, and the traffic beyond them."""
        return None if self.mapping is None else self.mapping.dram_bytes(self.problem.graph)

    def baseline_costs(self) -> dict[str, int]:
        """Each baseline's cost in the problem's objective."""
        objective, graph = self.problem.objective, self.problem.graph
        return {name: objective.of_steps(graph, m.steps) for name, m in self.baselines.items()}

    def baseline_bytes(self) -> dict[str, int]:
        return {name: m.offchip_bytes(self.problem.graph) for name, m in self.baselines.items()}

    def to_dict(self) -> dict:
        """The mapping file's object, with the solve's report, the baselines and the budgets."""
        problem = self.problem
        data = self.mapping.to_dict(problem.graph, self.solve) if self.mapping is not None else {}
        data.update(status=str(self.solve.status), objective=problem.objective.name,
                    objective_value=self.solve.objective, bound=self.solve.bound, gap=self.solve.gap,
                    seconds=self.solve.seconds, method=self.method, strategy=problem.strategy,
                    baselines=self.baseline_costs(), budgets=problem.budgets.to_dict(), message=self.solve.message,
                    solver_status=None if self.solver_result is None else str(self.solver_result.status))
        return data
