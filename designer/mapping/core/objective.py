"""What a mapping minimises, as one small object every model, baseline and the simulator take.

A mapping moves tensors between the scratchpad and host memory: a *spill* (written to host
the first time a still-needed tensor leaves) and a *retrieval* (read back). An objective prices
one such transfer of one tensor as a whole number (so CP-SAT and the MILPs stay exact after
dividing by the GCD of the prices) and sums the prices over a mapping's transfers.

:data:`OBJECTIVES`, by the name users type (``map --objective NAME``):

=========  ==========================================================================
offchip    spilled plus retrieved bytes (COSMA's objective). An input or weight (a
           tensor without producer) is read from host wherever it is needed, free.
dram       the traffic a DRAM sees beyond the compulsory: spills, retrievals, and every
           read of an input or weight after its first. The first reads and the final
           writes of the graph's outputs happen in every mapping (:func:`compulsory_bytes`)
           and are reported beside it, not minimised.
=========  ==========================================================================

A new objective (transfer time with a bandwidth and a per-transfer latency, energy per byte,
...) is one new class with its own :meth:`Objective.transfer_cost`; the models read only that
and :attr:`Objective.reloads_inputs`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from designer.mapping.core.graph import TensorGraph


class Objective:
    """The protocol: ``name``, ``unit``, whether reading an input or weight again costs
    (``reloads_inputs``), and the price of moving one tensor once."""

    name: str
    unit: str
    reloads_inputs: bool = False

    def transfer_cost(self, graph: TensorGraph, tensor: str) -> int:
        raise NotImplementedError

    def total(self, graph: TensorGraph, transfers: Iterable[str]) -> int:
        """The price of a sequence of transfers (tensor names, one per spill, retrieval or reload)."""
        return sum(self.transfer_cost(graph, name) for name in transfers)

    def of_steps(self, graph: TensorGraph, steps) -> int:
        """The price of a mapping's steps (each with ``resident``, ``spilled`` and ``retrieved``)."""
        moved = [name for step in steps for name in list(step.spilled) + list(step.retrieved)]
        if self.reloads_inputs:
            moved += input_reloads(graph, steps)
        return self.total(graph, moved)


def input_reloads(graph: TensorGraph, steps) -> list[str]:
    """Tensors without producer read from host again: one entry per stretch of consecutive
    resident steps after the tensor's first."""
    seen: set[str] = set()
    previous: dict = {}
    again = []
    for step in steps:
        for name in step.resident:
            if graph.tensors[name].producer is None and name not in previous:
                if name in seen:
                    again.append(name)
                seen.add(name)
        previous = step.resident
    return again


def compulsory_bytes(graph: TensorGraph) -> int:
    """What every mapping moves: each input and weight read once, each output written once."""
    return sum(t.bytes for name, t in graph.tensors.items()
               if (t.producer is None) == bool(graph.consumers[name]))


@dataclass(frozen=True)
class OffchipBytes(Objective):
    """Bytes moved off chip: spilled plus retrieved (COSMA's objective)."""

    name: str = "offchip"
    unit: str = "bytes"

    def transfer_cost(self, graph: TensorGraph, tensor: str) -> int:
        return graph.tensors[tensor].bytes


@dataclass(frozen=True)
class DramBytes(OffchipBytes):
    """Bytes a DRAM moves beyond the compulsory: spills, retrievals and input/weight re-reads."""

    name: str = "dram"
    reloads_inputs: bool = True


OFFCHIP_BYTES = OffchipBytes()
DRAM_BYTES = DramBytes()
OBJECTIVES: dict[str, Objective] = {o.name: o for o in (OFFCHIP_BYTES, DRAM_BYTES)}


def objective_named(name: str | Objective, option: str = "objective") -> Objective:
    """An objective by its name in :data:`OBJECTIVES` (an :class:`Objective` passes through)."""
    if isinstance(name, Objective):
        return name
    if name not in OBJECTIVES:
        raise ValueError(f"{option}: must be one of {', '.join(OBJECTIVES)}, got {name!r}")
    return OBJECTIVES[name]
