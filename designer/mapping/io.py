"""Mappings and the mapping file.

One JSON object: ``scratchpad_bytes``, ``offchip_bytes`` (non-compulsory: spilled plus
retrieved bytes), ``status``, ``bound``, ``gap``, ``seconds``, ``method``, ``tensors``
{name: {bytes, producer}}, ``operators`` {name: {inputs, outputs}}, and ``steps``, one per
operator in execution order: {``op``, ``resident`` {tensor: base address}, ``spilled``,
``retrieved``}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from designer.mapping.graph import TensorGraph


@dataclass
class Step:
    op: str
    resident: dict[str, int] = field(default_factory=dict)
    spilled: list[str] = field(default_factory=list)
    retrieved: list[str] = field(default_factory=list)


def offchip_bytes(graph: TensorGraph, steps: list[Step]) -> int:
    """Spilled plus retrieved bytes over ``steps``."""
    return sum(graph.tensors[t].bytes for step in steps for t in step.spilled + step.retrieved)


@dataclass
class Mapping:
    scratchpad_bytes: int
    steps: list[Step]
    method: str = ""
    status: str = "feasible"
    bound: float | None = None
    gap: float | None = None
    seconds: float = 0.0

    @property
    def order(self) -> list[str]:
        return [step.op for step in self.steps]

    def offchip_bytes(self, graph: TensorGraph) -> int:
        return offchip_bytes(graph, self.steps)

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

    def to_dict(self, graph: TensorGraph) -> dict[str, Any]:
        return {"scratchpad_bytes": self.scratchpad_bytes, "offchip_bytes": self.offchip_bytes(graph),
                "status": self.status, "bound": self.bound, "gap": self.gap, "seconds": self.seconds,
                "method": self.method, **{k: v for k, v in graph.to_dict().items() if k != "name"},
                "steps": [{"op": s.op, "resident": dict(s.resident), "spilled": list(s.spilled),
                           "retrieved": list(s.retrieved)} for s in self.steps]}

    def save(self, path: str | Path, graph: TensorGraph) -> None:
        Path(path).write_text(json.dumps(self.to_dict(graph), indent=1))
