"""An independent checker: replay a mapping step by step and reject it if any rule breaks.

It reads the mapping file format (:mod:`designer.mapping.io`) and the graph, and shares no
code with the solvers. Rules, for step t running operator op_t:

1. the steps run every operator exactly once, each after the producers of its inputs;
2. every input and output of op_t is resident at step t;
3. every resident tensor lies in [0, scratchpad_bytes) and no two overlap;
4. a produced tensor is resident only from its producer's step on;
5. a produced tensor resident at t but not at t - 1 is an output of op_t, or it is listed in
   ``retrieved`` and has a copy in host memory (it was spilled before);
6. every tensor resident at t - 1 and t keeps its address, inputs and weights included (one
   re-read from host at another address is a new residency: it needs a step between);
7. a produced tensor resident at t - 1 but not at t that is still needed (some consumer runs
   at t or later) has a host copy, or is listed in ``spilled`` at t (written now);
8. ``spilled`` lists only produced tensors resident at t - 1 and not at t; ``retrieved``
   only produced tensors resident at t and not at t - 1;
9. the file's ``offchip_bytes`` equals the bytes spilled plus retrieved.

Beside the bytes, the replay prices the transfers it saw with the given objective
(:mod:`designer.mapping.objective`: a price per tensor moved, nothing else), so a mapping
solved for another objective is checked in that objective's unit too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from designer.mapping.graph import TensorGraph
from designer.mapping.objective import OFFCHIP_BYTES, Objective


@dataclass(frozen=True)
class Replay:
    valid: bool
    errors: list[str] = field(default_factory=list)
    offchip_bytes: int = 0
    cost: int = 0  # the transfers replayed, priced by the objective

    def __bool__(self) -> bool:
        return self.valid


def simulate(graph: TensorGraph, mapping: dict[str, Any], max_errors: int = 20,
             objective: Objective = OFFCHIP_BYTES) -> Replay:
    errors: list[str] = []

    def fail(message: str) -> None:
        if len(errors) < max_errors:
            errors.append(message)

    capacity = mapping.get("scratchpad_bytes")
    steps = mapping.get("steps", [])
    if not isinstance(capacity, int) or capacity <= 0:
        return Replay(False, ["scratchpad_bytes: must be a positive integer"])
    order = [step.get("op") for step in steps]
    if sorted(map(str, order)) != sorted(graph.operators):
        missing = set(graph.operators) - set(order)
        extra = [op for op in order if op not in graph.operators]
        fail(f"rule 1: steps must run every operator once (missing {sorted(missing)[:5]}, unknown {extra[:5]}, "
             f"{len(order)} steps for {len(graph.operators)} operators)")
        return Replay(False, errors)
    position = {op: t for t, op in enumerate(order)}
    for op in graph.operators.values():
        for tensor in op.inputs:
            producer = graph.tensors[tensor].producer
            if producer is not None and position[producer] >= position[op.name]:
                fail(f"rule 1: {op.name} runs at step {position[op.name]} before its input {tensor}'s producer")
    last_need = {}
    for name, consumers in graph.consumers.items():
        last_need[name] = max((position[c] for c in consumers), default=-1)

    hosted: set[str] = set()
    previous: dict[str, int] = {}
    offchip = 0
    moved: list[str] = []  # tensors spilled or retrieved, in order
    for t, step in enumerate(steps):
        op = graph.operators[step["op"]]
        resident = {name: int(address) for name, address in step.get("resident", {}).items()}
        spilled, retrieved = list(step.get("spilled", [])), list(step.get("retrieved", []))
        unknown = [n for n in list(resident) + spilled + retrieved if n not in graph.tensors]
        if unknown:
            fail(f"step {t}: unknown tensors {unknown[:5]}")
            continue
        for name in dict.fromkeys(op.inputs + op.outputs):
            if name not in resident:
                fail(f"rule 2: step {t} ({op.name}): operand {name} is not resident")
        spans = sorted((address, address + graph.tensors[name].bytes, name) for name, address in resident.items())
        for start, end, name in spans:
            if start < 0 or end > capacity:
                fail(f"rule 3: step {t}: {name} at [{start}, {end}) leaves the scratchpad of {capacity} bytes")
        for (s1, e1, n1), (s2, e2, n2) in zip(spans, spans[1:]):
            if s2 < e1:
                fail(f"rule 3: step {t}: {n1} [{s1}, {e1}) overlaps {n2} [{s2}, {e2})")
        for name in resident:
            tensor = graph.tensors[name]
            if name in previous and previous[name] != resident[name]:
                fail(f"rule 6: step {t}: {name} moved from {previous[name]} to {resident[name]} while resident")
            if tensor.producer is None:
                continue
            if position[tensor.producer] > t:
                fail(f"rule 4: step {t}: {name} is resident before its producer {tensor.producer} runs")
            if name not in previous and tensor.producer != op.name:
                if name not in retrieved:
                    fail(f"rule 5: step {t}: {name} appears without being produced or retrieved")
                elif name not in hosted:
                    fail(f"rule 5: step {t}: {name} is retrieved but was never spilled")
        for name in spilled:
            if graph.tensors[name].producer is None or name not in previous or name in resident:
                fail(f"rule 8: step {t}: {name} is listed as spilled but was not resident before and dropped now "
                     f"(or has no producer)")
            else:
                hosted.add(name)
                offchip += graph.tensors[name].bytes
                moved.append(name)
        for name in retrieved:
            if graph.tensors[name].producer is None or name in previous or name not in resident:
                fail(f"rule 8: step {t}: {name} is listed as retrieved but is not newly resident (or has no "
                     f"producer)")
            else:
                offchip += graph.tensors[name].bytes
                moved.append(name)
        for name in previous:
            if name not in resident and graph.tensors[name].producer is not None and last_need[name] >= t \
                    and name not in hosted:
                fail(f"rule 7: step {t}: {name} is dropped while still needed, with no host copy")
        previous = resident
    claimed = mapping.get("offchip_bytes")
    if claimed is not None and claimed != offchip:
        fail(f"rule 9: offchip_bytes says {claimed}, the steps move {offchip}")
    return Replay(not errors, errors, offchip, objective.total(graph, moved))
