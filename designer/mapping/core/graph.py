"""Tensor graphs: operators that read and write tensors of known byte sizes (on networkx).

An operator reads its ``inputs`` and creates all its ``outputs`` together. A tensor has one
producer, or none (a network input or a weight, loaded from host memory at no counted cost).

Importers:

* :func:`from_node_link`: networkx node-link JSON, one output tensor per node, as exported for
  Checkmate (size ``cost_ram``) or the random layered graphs (size ``out_cost``, and
  ``param_cost`` as a weight tensor when ``include_weights``);
* :func:`from_hmcos`: the HMCOS/COSMA format (``name``, ``dummy_input_tensors``,
  ``graph_output_tensors``, ``tensor_list``, ``tensor_sizes``, ``dag``);
* :meth:`TensorGraph.from_dict`: our own graph JSON.

A module (``torch.export``) is imported by :mod:`designer.mapping.sources.importer`, and every source,
files and modules alike, is read by :func:`designer.mapping.load`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, reduce
from typing import Any

import networkx as nx

from designer.errors import Error


class GraphError(Error, ValueError):
    """A malformed tensor graph; the message names the operator or tensor."""


# Sizes beyond these overflow the solvers' 64-bit integer arithmetic (CP-SAT's domains, the
# sums of sizes over a schedule); no real scratchpad mapping comes near them.
MAX_TENSOR_BYTES = 2 ** 48
MAX_TOTAL_BYTES = 2 ** 56


@dataclass
class Tensor:
    name: str
    bytes: int
    producer: str | None = None


@dataclass
class Operator:
    name: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


class TensorGraph:
    """Operators (in the order given, a valid topological order is not assumed) and tensors."""

    def __init__(self, operators: list[Operator], tensors: list[Tensor], name: str = ""):
        self.name = name
        self.operators: dict[str, Operator] = {}
        for op in operators:
            if op.name in self.operators:
                raise GraphError(f"operator {op.name!r}: defined twice")
            self.operators[op.name] = op
        self.tensors: dict[str, Tensor] = {}
        for tensor in tensors:
            if tensor.name in self.tensors:
                raise GraphError(f"tensor {tensor.name!r}: defined twice")
            self.tensors[tensor.name] = tensor
        self._validate()
        self.dag = nx.DiGraph()
        self.dag.add_nodes_from(self.operators)
        for op in self.operators.values():
            for t in op.inputs:
                producer = self.tensors[t].producer
                if producer is not None:
                    self.dag.add_edge(producer, op.name)
        if not nx.is_directed_acyclic_graph(self.dag):
            cycle = " -> ".join(a for a, _ in nx.find_cycle(self.dag))
            raise GraphError(f"the graph has a cycle: {cycle}")
        self.consumers: dict[str, list[str]] = {t: [] for t in self.tensors}
        for op in self.operators.values():
            for t in dict.fromkeys(op.inputs):
                self.consumers[t].append(op.name)

    def _validate(self) -> None:
        if not self.operators:
            raise GraphError("the graph has no operators")
        for tensor in self.tensors.values():
            if isinstance(tensor.bytes, bool) or not isinstance(tensor.bytes, int) or tensor.bytes <= 0:
                raise GraphError(f"tensor {tensor.name!r}: size must be a positive integer of bytes, "
                                 f"got {tensor.bytes!r}")
            if tensor.bytes > MAX_TENSOR_BYTES:
                raise GraphError(f"tensor {tensor.name!r}: {tensor.bytes:.3g} bytes is more than the largest size "
                                 f"supported, 2^48 = {MAX_TENSOR_BYTES:,} bytes")
            if tensor.producer is not None and tensor.producer not in self.operators:
                raise GraphError(f"tensor {tensor.name!r}: producer {tensor.producer!r} is not an operator")
        if sum(t.bytes for t in self.tensors.values()) > MAX_TOTAL_BYTES:
            raise GraphError("the tensors total more than 2^56 bytes, beyond what the solvers can count")
        for op in self.operators.values():
            for t in op.inputs + op.outputs:
                if t not in self.tensors:
                    raise GraphError(f"operator {op.name!r}: tensor {t!r} is not defined")
            for t in op.outputs:
                if self.tensors[t].producer != op.name:
                    raise GraphError(f"operator {op.name!r}: output {t!r} names {self.tensors[t].producer!r} "
                                     f"as its producer")
            if set(op.inputs) & set(op.outputs):
                raise GraphError(f"operator {op.name!r}: reads a tensor it writes")
        for tensor in self.tensors.values():
            if tensor.producer is not None and tensor.name not in self.operators[tensor.producer].outputs:
                raise GraphError(f"tensor {tensor.name!r}: not among its producer's outputs")

    # ---- queries --------------------------------------------------------------------
    def operands(self, op: str) -> list[str]:
        """Distinct tensors an operator needs resident: its inputs and outputs."""
        o = self.operators[op]
        return list(dict.fromkeys(o.inputs + o.outputs))

    @cached_property
    def byte_unit(self) -> int:
        """The largest byte count dividing every tensor's size: the unit the solvers' sizes are
        counted in (with the scratchpad's, :func:`designer.mapping.core.units.gcd_unit`)."""
        return reduce(math.gcd, (t.bytes for t in self.tensors.values()))

    def operand_bytes(self, op: str) -> int:
        return sum(self.tensors[t].bytes for t in self.operands(op))

    def topological_order(self) -> list[str]:
        """The operators in file order when that is topological, else networkx's order that
        follows file order as closely as it can."""
        index = {name: i for i, name in enumerate(self.operators)}
        return list(nx.lexicographical_topological_sort(self.dag, key=lambda n: index[n]))

    def position_windows(self) -> dict[str, tuple[int, int]]:
        """Each operator's earliest and latest step in any schedule: after all its ancestors,
        before all its descendants (what every time-indexed model and CP-SAT bound positions by)."""
        n = len(self.operators)
        return {op: (len(nx.ancestors(self.dag, op)), n - 1 - len(nx.descendants(self.dag, op)))
                for op in self.operators}

    def is_schedule(self, order: list[str]) -> bool:
        position = {op: i for i, op in enumerate(order)}
        return (sorted(order) == sorted(self.operators)
                and all(position[a] < position[b] for a, b in self.dag.edges))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name,
                "tensors": {t.name: {"bytes": t.bytes, "producer": t.producer} for t in self.tensors.values()},
                "operators": {o.name: {"inputs": o.inputs, "outputs": o.outputs} for o in self.operators.values()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorGraph:
        if not isinstance(data.get("tensors"), dict) or not isinstance(data.get("operators"), dict):
            raise GraphError("graph JSON: expected 'tensors' and 'operators' objects keyed by name")
        tensors, operators = [], []
        for name, t in data["tensors"].items():
            if not isinstance(t, dict) or "bytes" not in t:
                raise GraphError(f"tensor {name!r}: expected an object with 'bytes' (and 'producer')")
            unknown = sorted(set(t) - {"bytes", "producer"})
            if unknown:
                raise GraphError(f"tensor {name!r}: unknown field(s) {', '.join(unknown)}")
            producer = t.get("producer")
            if producer is not None and not isinstance(producer, str):
                raise GraphError(f"tensor {name!r}: producer must be an operator name or null, got {producer!r}")
            tensors.append(Tensor(name, _size(t["bytes"], f"tensor {name!r}"), producer))
        for name, o in data["operators"].items():
            if not isinstance(o, dict):
                raise GraphError(f"operator {name!r}: expected an object with 'inputs' and 'outputs'")
            unknown = sorted(set(o) - {"inputs", "outputs"})
            if unknown:
                raise GraphError(f"operator {name!r}: unknown field(s) {', '.join(unknown)}")
            lists = [o.get(key, []) for key in ("inputs", "outputs")]
            if not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in lists):
                raise GraphError(f"operator {name!r}: inputs and outputs must be lists of tensor names")
            operators.append(Operator(name, list(lists[0]), list(lists[1])))
        return cls(operators, tensors, data.get("name", ""))

    def __repr__(self) -> str:
        return f"TensorGraph({self.name!r}, {len(self.operators)} operators, {len(self.tensors)} tensors)"


def _size(value: Any, where: str) -> int:
    """A size in bytes: a positive whole JSON number (1e6 is fine; "1000", 1.5, NaN are not)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0
            or not float(value).is_integer()):
        raise GraphError(f"{where}: size must be a positive whole number of bytes, got {value!r}")
    return int(value)


def from_node_link(data: dict[str, Any], name: str = "", include_weights: bool = False) -> TensorGraph:
    """One operator per node, producing one tensor named after it."""
    nodes = data.get("nodes")
    links = data.get("links", data.get("edges"))
    if not isinstance(nodes, list) or not isinstance(links, list):
        raise GraphError("node-link JSON: expected 'nodes' and 'links' lists")
    ids, operators, tensors = {}, {}, []
    for i, node in enumerate(nodes):
        key = node.get("id", node.get("name", i))
        label = str(node.get("name", key))
        if label in operators:
            label = f"{label}#{key}"
        ids[key] = label
        size = node.get("cost_ram", node.get("out_cost"))
        if size is None:
            raise GraphError(f"node {label!r}: no output size ('cost_ram' or 'out_cost')")
        operators[label] = Operator(label, [], [label])
        tensors.append(Tensor(label, _size(size, f"node {label!r}"), label))
        if include_weights and node.get("param_cost", 0):
            weight = f"{label}/weights"
            tensors.append(Tensor(weight, _size(node["param_cost"], f"node {label!r} param_cost"), None))
            operators[label].inputs.append(weight)
    for link in links:
        source = link.get("source", link.get("0"))
        target = link.get("target", link.get("1"))
        if source not in ids or target not in ids:
            raise GraphError(f"link {source!r} -> {target!r}: dangling (no such node)")
        operators[ids[target]].inputs.append(ids[source])
    return TensorGraph(list(operators.values()), tensors, name)


def from_hmcos(data: dict[str, Any]) -> TensorGraph:
    try:
        sizes = dict(zip(data["tensor_list"], data["tensor_sizes"]))
        dag = data["dag"]
    except KeyError as err:
        raise GraphError(f"HMCOS JSON: missing key {err}") from None
    producers = {}
    operators = []
    for node in dag:
        op = Operator(str(node["name"]), [str(t) for t in node.get("input_tensors", [])],
                      [str(t) for t in node.get("output_tensors", [])])
        for t in op.outputs:
            producers[t] = op.name
        operators.append(op)
    tensors = []
    for t in data["tensor_list"]:
        if t not in sizes:
            raise GraphError(f"tensor {t!r}: no size")
        tensors.append(Tensor(str(t), _size(sizes[t], f"tensor {t!r}"), producers.get(t)))
    return TensorGraph(operators, tensors, str(data.get("name", "")))
