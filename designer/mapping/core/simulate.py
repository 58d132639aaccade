"""An independent checker: replay a mapping step by step and reject it if any rule breaks.

It reads the mapping file format (:mod:`designer.mapping.core.io`) and the graph, and shares no
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
9. the file's ``offchip_bytes`` equals the bytes spilled plus retrieved;
10. the file's ``dram_bytes``, when given, equals what a DRAM moves: ``compulsory``, each
    input and weight read the first time it becomes resident plus each output (a produced
    tensor nobody reads) written once; ``traffic``, spills, retrievals and every later read of
    an input or weight (it became resident again after a step away).

Beside the bytes, the replay prices the transfers it saw with the given objective
(:mod:`designer.mapping.core.objective`: a price per tensor moved, nothing else; re-reads of inputs
and weights are transfers when the objective says they cost), so a mapping
solved for another objective is checked in that objective's unit too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from designer.mapping.core.graph import TensorGraph
from designer.mapping.core.objective import OFFCHIP_BYTES, Objective


@dataclass(frozen=True)
class Replay:
    valid: bool
    errors: list[str] = field(default_factory=list)
    offchip_bytes: int = 0
    cost: int = 0  # the transfers replayed, priced by the objective
    reload_bytes: int = 0  # inputs and weights read again
    compulsory_bytes: int = 0  # first reads of inputs and weights, final writes of outputs

    def __bool__(self) -> bool:
        return self.valid


class _Replayer:
    """The replay's state, step by step: what is resident where, what has a host copy, what
    moved, and the rules broken so far."""

    def __init__(self, graph: TensorGraph, capacity: int, max_errors: int):
        self.graph, self.capacity, self.max_errors = graph, capacity, max_errors
        self.errors: list[str] = []
        self.hosted: set[str] = set()
        self.previous: dict[str, int] = {}
        self.moved: list[str] = []  # tensors spilled or retrieved, in order
        self.read: set[str] = set()  # inputs and weights read from host at least once
        self.reloaded: list[str] = []  # ... and each read after the first
        self.position: dict[str, int] = {}
        self.last_need: dict[str, int] = {}

    def fail(self, message: str) -> None:
        if len(self.errors) < self.max_errors:
            self.errors.append(message)

    def check_order(self, order: list) -> bool:
        """Rule 1; False when the steps are not one per operator (nothing else can be checked)."""
        graph = self.graph
        if sorted(map(str, order)) != sorted(graph.operators):
            missing = set(graph.operators) - set(order)
            extra = [op for op in order if op not in graph.operators]
            self.fail(f"rule 1: steps must run every operator once (missing {sorted(missing)[:5]}, unknown "
                      f"{extra[:5]}, {len(order)} steps for {len(graph.operators)} operators)")
            return False
        self.position = {op: t for t, op in enumerate(order)}
        for op in graph.operators.values():
            for tensor in op.inputs:
                producer = graph.tensors[tensor].producer
                if producer is not None and self.position[producer] >= self.position[op.name]:
                    self.fail(f"rule 1: {op.name} runs at step {self.position[op.name]} before its input {tensor}'s "
                              f"producer")
        self.last_need = {name: max((self.position[c] for c in consumers), default=-1)
                          for name, consumers in graph.consumers.items()}
        return True

    def step(self, t: int, step: dict[str, Any]) -> None:
        graph = self.graph
        op = graph.operators[step["op"]]
        resident = {name: int(address) for name, address in step.get("resident", {}).items()}
        spilled, retrieved = list(step.get("spilled", [])), list(step.get("retrieved", []))
        unknown = [n for n in list(resident) + spilled + retrieved if n not in graph.tensors]
        if unknown:
            self.fail(f"step {t}: unknown tensors {unknown[:5]}")
            return
        for name in dict.fromkeys(op.inputs + op.outputs):
            if name not in resident:
                self.fail(f"rule 2: step {t} ({op.name}): operand {name} is not resident")
        self.space(t, resident)
        self.arrivals(t, op.name, resident, retrieved)
        self.transfers(t, resident, spilled, retrieved)
        self.previous = resident

    def space(self, t: int, resident: dict[str, int]) -> None:
        """Rule 3."""
        spans = sorted((address, address + self.graph.tensors[name].bytes, name) for name, address in resident.items())
        for start, end, name in spans:
            if start < 0 or end > self.capacity:
                self.fail(f"rule 3: step {t}: {name} at [{start}, {end}) leaves the scratchpad of {self.capacity} "
                          f"bytes")
        for (s1, e1, n1), (s2, e2, n2) in zip(spans, spans[1:]):
            if s2 < e1:
                self.fail(f"rule 3: step {t}: {n1} [{s1}, {e1}) overlaps {n2} [{s2}, {e2})")

    def arrivals(self, t: int, op: str, resident: dict[str, int], retrieved: list[str]) -> None:
        """Rules 4-6, and the reads of inputs and weights (first or again)."""
        for name in resident:
            tensor, previous = self.graph.tensors[name], self.previous
            if name in previous and previous[name] != resident[name]:
                self.fail(f"rule 6: step {t}: {name} moved from {previous[name]} to {resident[name]} while resident")
            if tensor.producer is None:
                if name not in previous:  # read from host now
                    if name in self.read:
                        self.reloaded.append(name)
                    self.read.add(name)
                continue
            if self.position[tensor.producer] > t:
                self.fail(f"rule 4: step {t}: {name} is resident before its producer {tensor.producer} runs")
            if name not in previous and tensor.producer != op:
                if name not in retrieved:
                    self.fail(f"rule 5: step {t}: {name} appears without being produced or retrieved")
                elif name not in self.hosted:
                    self.fail(f"rule 5: step {t}: {name} is retrieved but was never spilled")

    def transfers(self, t: int, resident: dict[str, int], spilled: list[str], retrieved: list[str]) -> None:
        """Rules 7 and 8."""
        graph, previous = self.graph, self.previous
        for name in spilled:
            if graph.tensors[name].producer is None or name not in previous or name in resident:
                self.fail(f"rule 8: step {t}: {name} is listed as spilled but was not resident before and dropped "
                          f"now (or has no producer)")
            else:
                self.hosted.add(name)
                self.moved.append(name)
        for name in retrieved:
            if graph.tensors[name].producer is None or name in previous or name not in resident:
                self.fail(f"rule 8: step {t}: {name} is listed as retrieved but is not newly resident (or has no "
                          f"producer)")
            else:
                self.moved.append(name)
        for name in previous:
            if (name not in resident and graph.tensors[name].producer is not None and self.last_need[name] >= t
                    and name not in self.hosted):
                self.fail(f"rule 7: step {t}: {name} is dropped while still needed, with no host copy")


def simulate(graph: TensorGraph, mapping: dict[str, Any], max_errors: int = 20,
             objective: Objective = OFFCHIP_BYTES) -> Replay:
    capacity = mapping.get("scratchpad_bytes")
    steps = mapping.get("steps", [])
    if not isinstance(capacity, int) or capacity <= 0:
        return Replay(False, ["scratchpad_bytes: must be a positive integer"])
    replay = _Replayer(graph, capacity, max_errors)
    if not replay.check_order([step.get("op") for step in steps]):
        return Replay(False, replay.errors)
    for t, step in enumerate(steps):
        replay.step(t, step)
    offchip = sum(graph.tensors[name].bytes for name in replay.moved)
    claimed = mapping.get("offchip_bytes")
    if claimed is not None and claimed != offchip:
        replay.fail(f"rule 9: offchip_bytes says {claimed}, the steps move {offchip}")
    reload_bytes = sum(graph.tensors[name].bytes for name in replay.reloaded)
    compulsory = sum(graph.tensors[name].bytes for name in replay.read) + sum(
        t.bytes for name, t in graph.tensors.items() if t.producer is not None and not graph.consumers[name])
    dram = mapping.get("dram_bytes")
    if dram is not None and dram != {"compulsory": compulsory, "traffic": offchip + reload_bytes}:
        replay.fail(f"rule 10: dram_bytes says {dram}, the steps move {compulsory} compulsory and "
                    f"{offchip + reload_bytes} traffic")
    priced = objective.total(graph, replay.moved + (replay.reloaded if objective.reloads_inputs else []))
    return Replay(not replay.errors, replay.errors, offchip, priced, reload_bytes, compulsory)
