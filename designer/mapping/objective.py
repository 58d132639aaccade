"""What a mapping minimises, as one small object every model, baseline and the simulator take.

A mapping moves tensors between the scratchpad and host memory: a *spill* (written to host
the first time a still-needed tensor leaves) and a *retrieval* (read back). An objective prices
one such transfer of one tensor as a whole number (so CP-SAT and the MILPs stay exact after
dividing by the GCD of the prices) and sums the prices over a mapping's transfers.

Today's objective is :data:`OFFCHIP_BYTES`, the tensor's size. A new one (transfer time with a
bandwidth and a per-transfer latency, energy per byte and per burst, ...) is one new class with
its own :meth:`Objective.transfer_cost`; the models read only that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from designer.mapping.graph import TensorGraph


class Objective:
    """The protocol: ``name``, ``unit`` and the price of moving one tensor once."""

    name: str
    unit: str

    def transfer_cost(self, graph: TensorGraph, tensor: str) -> int:
        raise NotImplementedError

    def total(self, graph: TensorGraph, transfers: Iterable[str]) -> int:
        """The price of a sequence of transfers (tensor names, one per spill or retrieval)."""
        return sum(self.transfer_cost(graph, name) for name in transfers)

    def of_steps(self, graph: TensorGraph, steps) -> int:
        """The price of a mapping's steps (each with ``spilled`` and ``retrieved`` lists)."""
        return self.total(graph, (name for step in steps for name in list(step.spilled) + list(step.retrieved)))


@dataclass(frozen=True)
class OffchipBytes(Objective):
    """Bytes moved off chip: spilled plus retrieved (COSMA's objective)."""

    name: str = "offchip_bytes"
    unit: str = "bytes"

    def transfer_cost(self, graph: TensorGraph, tensor: str) -> int:
        return graph.tensors[tensor].bytes


OFFCHIP_BYTES = OffchipBytes()
