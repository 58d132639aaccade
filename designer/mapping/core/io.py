"""Mappings and the mapping file.

One JSON object: ``scratchpad_bytes``, ``offchip_bytes`` (non-compulsory: spilled plus
retrieved bytes), ``dram_bytes`` {``compulsory``: each input and weight read once and each
output written once, ``traffic``: spills, retrievals and re-reads of inputs and weights},
``status``, ``bound``, ``gap``, ``seconds``, ``method``, ``tensors``
{name: {bytes, producer}}, ``operators`` {name: {inputs, outputs}}, and ``steps``, one per
operator in execution order: {``op``, ``resident`` {tensor: base address}, ``spilled``,
``retrieved``}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from designer import checks, files
from designer.schemas import FORMAT_VERSION, check_version
from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.objective import DRAM_BYTES, compulsory_bytes
from solvers.result import SolveResult


@dataclass
class Step:
    op: str
    resident: dict[str, int] = field(default_factory=dict)
    spilled: list[str] = field(default_factory=list)
    retrieved: list[str] = field(default_factory=list)


def offchip_bytes(graph: TensorGraph, steps: list[Step]) -> int:
    """Spilled plus retrieved bytes over ``steps``."""
    return sum(graph.tensors[t].bytes for step in steps for t in step.spilled + step.retrieved)


@dataclass(frozen=True)
class Mapping:
    """A schedule with every step's resident tensors (and addresses), spills and retrievals;
    ``method`` says what made it. How good it is and what was proven about it live in the
    :class:`~solvers.SolveResult` beside it."""

    scratchpad_bytes: int
    steps: list[Step]
    method: str = ""

    @property
    def order(self) -> list[str]:
        return [step.op for step in self.steps]

    def offchip_bytes(self, graph: TensorGraph) -> int:
        return offchip_bytes(graph, self.steps)

    def dram_bytes(self, graph: TensorGraph) -> dict[str, int]:
        """What a DRAM moves: the ``compulsory`` first reads and final writes, and the ``traffic`` beyond."""
        return {"compulsory": compulsory_bytes(graph), "traffic": DRAM_BYTES.of_steps(graph, self.steps)}

    def residency_runs(self) -> dict[str, list[tuple[int, int, int]]]:
        """Per tensor, its stretches of consecutive resident steps at one address:
        (first step, step after the last, address), in step order."""
        runs: dict[str, list[tuple[int, int, int]]] = {}
        for t, step in enumerate(self.steps):
            for name, address in step.resident.items():
                found = runs.setdefault(name, [])
                if found and found[-1][1] == t and found[-1][2] == address:
                    found[-1] = (found[-1][0], t + 1, address)
                else:
                    found.append((t, t + 1, address))
        return runs

    def to_dict(self, graph: TensorGraph, result: SolveResult | None = None) -> dict[str, Any]:
        """The mapping file's object; ``status``, ``bound``, ``gap`` and ``seconds`` come from
        the ``result`` that reports on this mapping (None without one)."""
        return {"format_version": FORMAT_VERSION, "scratchpad_bytes": self.scratchpad_bytes,
                "offchip_bytes": self.offchip_bytes(graph),
                "dram_bytes": self.dram_bytes(graph),
                "status": str(result.status) if result is not None else None,
                "bound": result.bound if result is not None else None,
                "gap": result.gap if result is not None else None,
                "seconds": result.seconds if result is not None else None,
                "method": self.method, **{k: v for k, v in graph.to_dict().items() if k != "name"},
                "steps": [{"op": s.op, "resident": dict(s.resident), "spilled": list(s.spilled),
                           "retrieved": list(s.retrieved)} for s in self.steps]}

    def save(self, path: str | Path, graph: TensorGraph, result: SolveResult | None = None) -> None:
        files.write_text(path, json.dumps(self.to_dict(graph, result), indent=1))

    def check_graph(self, graph: TensorGraph, name: str = "mapping") -> None:
        """That the steps name only ``graph``'s operators and tensors: a mapping of another graph
        is refused here, by ``name``, before anything replays it (whether the steps are a valid
        mapping of this graph is the simulator's question)."""
        ops = [step.op for step in self.steps]
        unknown = sorted({op for op in ops if op not in graph.operators})
        if unknown:
            raise ValueError(f"{name}: not a mapping of {graph}: its steps run operators the graph does not have "
                             f"({', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''})")
        named = {t for step in self.steps for t in [*step.resident, *step.spilled, *step.retrieved]}
        strangers = sorted(named - set(graph.tensors))
        if strangers:
            raise ValueError(f"{name}: not a mapping of {graph}: it places tensors the graph does not have "
                             f"({', '.join(strangers[:3])}{', ...' if len(strangers) > 3 else ''})")

    @classmethod
    def load(cls, path: str | Path, name: str = "mapping") -> Mapping:
        """A mapping file's steps (strictly read JSON; whether they are a valid mapping of some
        graph is the simulator's question, asked by whoever uses it)."""
        data = checks.load_json(path, name)
        check_version(data, f"{name}: {path}")
        try:
            steps = [Step(str(step["op"]), {str(k): int(v) for k, v in step["resident"].items()},
                          [str(t) for t in step.get("spilled", [])], [str(t) for t in step.get("retrieved", [])])
                     for step in data["steps"]]
            return cls(int(data["scratchpad_bytes"]), steps, str(data.get("method") or ""))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{name}: {path}: not a mapping file ({type(error).__name__}: {error})") from None


@dataclass(frozen=True)
class MappingOutcome:
    """What one mapping strategy gave (:mod:`designer.mapping.strategies`): its mapping, or
    None if it found none, and its own report (objective and bound in the objective's unit)."""

    mapping: Mapping | None
    result: SolveResult
