"""An ATen-level FX graph (``torch.export`` or AOTAutograd's joint graph) as a tensor graph.

* **values**: every tensor an operator computes is a tensor of the graph, sized
  ``numel x bytes_per_element``; a tuple-returning op (layer norm, batch norm, max-pool with
  indices) has one output per element something downstream uses (``getitem`` picks it);
* **aliases**: views and copies of layout (view, reshape, permute, transpose, expand, squeeze,
  unsqueeze, clone, contiguous, detach, alias) create no tensor: they name the tensor they view;
* **parts**: a select, slice, split, chunk or unbind names a *part* of the tensor it views,
  sized as what it reads. When every reader of a produced tensor reads disjoint parts of one
  view of it (attention's q, k and v from one in-projection), the producer writes those parts
  as tensors of their own, so each leaves the scratchpad when its readers are done; otherwise a
  part reads the whole tensor;
* **weights**: parameters, buffers and constants are weight tensors (no producer, loaded from
  host) when ``include_weights``, and are left out otherwise, never taken for activations;
* **constants**: an operator that reads no activation (a mask built from ``arange``, ``zeros``
  and slicing, ``ones_like`` of a shape, ``fill``) computes a constant: folded away, its result
  a constant like a buffer;
* **fusion** (``fuse``): batch norm (folded: its parameters are the conv's), activations and
  elementwise ops join the operator that produces their first input when they are its only
  consumer, so conv + BN + ReLU/SiLU/GELU/Hardswish/Mish, add + ReLU and elementwise chains are
  one operator that reads its inputs and weights and writes one output, as an accelerator runs
  them. The capture (:mod:`designer.mapping.sources.importer`) keeps those activations and attention's
  ``_safe_softmax`` whole instead of decomposing them, so they are one operator each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from designer.mapping.core.graph import GraphError, Operator, Tensor, TensorGraph

ALIASES = {"view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "squeeze", "unsqueeze",
           "clone", "contiguous", "detach", "alias", "lift_fresh_copy", "_to_copy", "flatten", "view_as",
           "expand_as", "unflatten"}
PARTS = {"select", "slice", "split", "split_with_sizes", "chunk", "unbind"}
SHAPE_ONLY = {"empty_like", "zeros_like", "ones_like", "full_like", "new_zeros", "new_ones", "new_empty", "new_full",
              "empty", "zeros", "ones", "full", "arange", "scalar_tensor", "fill", "_assert_tensor_metadata"}
NORMS = {"_native_batch_norm_legit_no_training", "_native_batch_norm_legit", "native_batch_norm", "batch_norm"}
ACTIVATIONS = {"relu", "relu6", "hardtanh", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
               "leaky_relu", "elu", "mish", "clamp", "clamp_min", "clamp_max"}
ELEMENTWISE = {"add", "sub", "mul", "div", "neg", "exp", "pow", "sqrt", "rsqrt", "abs", "reciprocal", "where",
               "_softmax_backward_data", "dropout", "native_dropout", "sign", "maximum", "minimum"}


@dataclass
class _Op:
    name: str
    kind: str
    inputs: list[str]
    outputs: list[str]
    weights: list[str] = field(default_factory=list)
    joins: bool = False  # reads the tiles of a tiled prefix's cut: never fused into one tile's operator


@dataclass(frozen=True)
class _Part:
    """Elements [start, stop) along ``dim`` of the view ``source`` of tensor ``base``."""

    base: str
    source: str
    dim: int
    start: int
    stop: int
    bytes: int

    @property
    def key(self) -> str:
        return f"{self.base}[{self.source}:{self.dim}:{self.start}:{self.stop}]"


def kind_of(node) -> str:
    target = node.target
    packet = getattr(target, "_overloadpacket", None)
    if packet is not None:
        return packet.__name__
    return getattr(target, "__name__", str(target))


def _tensors_of(value) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for item in value for v in _tensors_of(item)]
    return []


def _argument(node, index: int, name: str, default):
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


def _regions(node, kind: str, value) -> list[tuple[int, int, int]] | None:
    """(dim, start, stop) of each part a select/slice/split/chunk/unbind reads, in the
    coordinates of the view it reads; None for a strided slice (not a block)."""
    shape = node.args[0].meta["val"].shape
    if kind == "select":
        dim, index = _argument(node, 1, "dim", 0), _argument(node, 2, "index", 0)
        dim, index = dim % len(shape), index % shape[dim]
        return [(dim, index, index + 1)]
    if kind == "slice":
        dim = _argument(node, 1, "dim", 0) % len(shape)
        if _argument(node, 4, "step", 1) != 1:
            return None
        start, stop, _ = slice(_argument(node, 2, "start", None), _argument(node, 3, "end", None)).indices(shape[dim])
        return [(dim, start, max(start, stop))]
    dim = (_argument(node, 1, "dim", 0) if kind == "unbind" else _argument(node, 2, "dim", 0)) % len(shape)
    regions, start = [], 0
    for part in value:
        length = 1 if kind == "unbind" else int(part.shape[dim])
        regions.append((dim, start, start + length))
        start += length
    return regions


class _Importer:
    """One pass over the FX graph's nodes; :meth:`graph` then splits, fuses and builds."""

    def __init__(self, specs: dict[str, str], targets: dict[str, str], bytes_per_element: int,
                 include_weights: bool):
        self.specs, self.targets = specs, targets
        self.bytes_per_element, self.include_weights = bytes_per_element, include_weights
        self.tensors: dict[str, Tensor] = {}
        self.where: dict[str, object] = {}  # fx node -> tensor name, _Part, a list of those, or None
        self.parts: dict[str, _Part] = {}
        self.ops: list[_Op] = []
        self.origin: dict[str, tuple[str, int | None]] = {}  # tensor -> (fx node, output index or None)

    def size_of(self, value) -> int:
        return max(1, int(value.numel()) * self.bytes_per_element)

    def resolve(self, arg) -> list[str]:
        """Tensor names (or part keys) an argument reads."""
        found = []
        for item in arg if isinstance(arg, (list, tuple)) else [arg]:
            if isinstance(item, (list, tuple)):
                found += self.resolve(item)
            elif hasattr(item, "name") and item.name in self.where:
                value = self.where[item.name]
                for v in value if isinstance(value, list) else [value]:
                    if isinstance(v, _Part):
                        self.parts[v.key] = v
                        found.append(v.key)
                    elif v:
                        found.append(v)
        return found

    def is_activation(self, name: str) -> bool:
        base = self.parts[name].base if name in self.parts else name
        return self.tensors[base].producer is not None or self.specs.get(base, "USER_INPUT") == "USER_INPUT"

    def constant(self, node, value, kind: str) -> None:
        """A weight, buffer or folded constant: a tensor without producer, with weights only."""
        if self.include_weights and isinstance(value, torch.Tensor):
            name = self.targets.get(node.name, node.name)  # a parameter's own name, e.g. stem.conv.weight
            self.tensors[name] = Tensor(name, self.size_of(value), None)
            self.specs[name] = kind
            self.where[node.name] = name
        else:
            self.where[node.name] = None

    def placeholder(self, node, value) -> None:
        kind = self.specs.get(node.name, "USER_INPUT")
        if kind == "USER_INPUT" and isinstance(value, torch.Tensor):
            self.tensors[node.name] = Tensor(node.name, self.size_of(value), None)
            self.where[node.name] = node.name
            self.origin[node.name] = (node.name, None)
        else:
            self.constant(node, value, kind)

    def getitem(self, node) -> None:
        source, index = node.args
        picked = self.where.get(source.name)
        if isinstance(picked, list):
            self.where[node.name] = picked[index] if index < len(picked) else None
        else:
            self.where[node.name] = picked  # an element of a view tuple: the tensor it views

    def view(self, node, kind: str, value, activation: str) -> None:
        """An alias names what it views; a part of a produced tensor is a part (module docstring)."""
        many = isinstance(value, (tuple, list))
        viewed = self.parts.get(activation, activation)
        regions = _regions(node, kind, value) if kind in PARTS and isinstance(viewed, str) else None
        if regions is None or self.tensors[viewed].producer is None:
            self.where[node.name] = [viewed] * len(value) if many else viewed
            return
        sizes = [self.size_of(v) for v in (value if many else [value])]
        found = [_Part(viewed, node.args[0].name, dim, start, stop, size)
                 for (dim, start, stop), size in zip(regions, sizes)]
        self.where[node.name] = found if many else found[0]

    def operator(self, node, kind: str, value, activations: list[str], weights: list[str]) -> None:
        outputs = _tensors_of(value)
        if not outputs:
            self.where[node.name] = None
            return
        used = _used_outputs(node) if isinstance(value, (tuple, list)) else {0}
        names = []
        for i, tensor in enumerate(outputs):
            name = None if i not in used else node.name if len(outputs) == 1 else f"{node.name}.{i}"
            if name is not None:
                self.tensors[name] = Tensor(name, self.size_of(tensor), node.name)
                self.origin[name] = (node.name, None if len(outputs) == 1 else i)
            names.append(name)
        self.where[node.name] = names[0] if not isinstance(value, (tuple, list)) else names
        if any(names):
            self.ops.append(_Op(node.name, kind, activations, [n for n in names if n], weights))

    def node(self, node) -> None:
        value = node.meta.get("val")
        if node.op == "placeholder":
            self.placeholder(node, value)
            return
        if node.op != "call_function":
            return
        kind = kind_of(node)
        if kind == "getitem":
            self.getitem(node)
            return
        sources = list(dict.fromkeys(self.resolve(node.args) + self.resolve(list(node.kwargs.values()))))
        activations = [s for s in sources if self.is_activation(s)]
        weights = [s for s in sources if s not in activations]
        if (kind in ALIASES or kind in PARTS) and activations:
            self.view(node, kind, value, activations[0])
        elif kind in ALIASES or kind in PARTS:  # a view of a weight: the weight itself
            self.where[node.name] = ([weights[0]] * len(value) if isinstance(value, (tuple, list)) else weights[0]) \
                if weights else None
        elif not activations or kind in SHAPE_ONLY:  # reads no activation's values: a constant
            self.constant(node, value if isinstance(value, torch.Tensor) else None, "CONSTANT")
        else:
            self.operator(node, kind, value, activations, weights)

    def split_parts(self, outputs: set[str]) -> None:
        """Each produced tensor read only as disjoint parts of one view becomes those parts."""
        whole = {t for op in self.ops for t in op.inputs if t not in self.parts} | outputs
        by_base: dict[str, list[_Part]] = {}
        for key in dict.fromkeys(t for op in self.ops for t in op.inputs if t in self.parts):
            by_base.setdefault(self.parts[key].base, []).append(self.parts[key])
        split = {}
        for base, parts in by_base.items():
            blocks = sorted({(p.source, p.dim, p.start, p.stop) for p in parts}, key=lambda b: b[2])
            disjoint = len({(s, d) for s, d, _, _ in blocks}) == 1 and all(
                a[3] <= b[2] for a, b in zip(blocks, blocks[1:]))
            if base not in whole and disjoint and sum(p.bytes for p in {p.key: p for p in parts}.values()) \
                    <= self.tensors[base].bytes:
                split[base] = list({p.key: p for p in parts}.values())
        for op in self.ops:
            inputs = [t if t not in self.parts or self.parts[t].base in split else self.parts[t].base
                      for t in op.inputs]
            op.inputs = list(dict.fromkeys(inputs))
            op.outputs = [key for t in op.outputs for key in ([p.key for p in split[t]] if t in split else [t])]
        for base, parts in split.items():
            producer = self.tensors.pop(base).producer
            for part in parts:
                self.tensors[part.key] = Tensor(part.key, part.bytes, producer)

    def graph(self, fx_graph, name: str, fuse: bool, transform=None) -> TensorGraph:
        outputs = set(self.resolve(next(n for n in fx_graph.nodes if n.op == "output").args))
        outputs = {self.parts[o].base if o in self.parts else o for o in outputs}
        if not self.ops:
            raise GraphError(f"{name}: the captured graph computes nothing")
        if transform is not None:  # e.g. tiling (designer.mapping.tiling.plan.tile_ops), before parts and fusion
            self.ops = transform(self.ops, self.tensors, self.origin)
        self.split_parts(outputs)
        ops = _fuse(self.ops, self.tensors, outputs) if fuse else self.ops
        operators = [Operator(op.name, list(dict.fromkeys(op.inputs + (op.weights if self.include_weights else []))),
                              list(op.outputs)) for op in ops]
        used = {t for op in operators for t in op.inputs + op.outputs}
        return TensorGraph(operators, [t for n, t in self.tensors.items() if n in used], name)


def import_fx(fx_graph, specs: dict[str, str], targets: dict[str, str], bytes_per_element: int,
              include_weights: bool, name: str, fuse: bool, transform=None) -> TensorGraph:
    """The tensor graph of an ATen FX graph (module docstring); ``specs`` maps placeholders to
    their kind (USER_INPUT, PARAMETER, BUFFER, ...), ``targets`` to their parameter's name;
    ``transform(ops, tensors, origin)`` rewrites the operators before parts and fusion."""
    importer = _Importer(dict(specs), targets, bytes_per_element, include_weights)
    for node in fx_graph.nodes:
        importer.node(node)
    return importer.graph(fx_graph, name, fuse, transform)


def _used_outputs(node) -> set[int]:
    used = set()
    for user in node.users:
        if kind_of(user) == "getitem" and user.users:
            used.add(user.args[1])
    return used or {0}


def _fuse(ops: list[_Op], tensors: dict[str, Tensor], graph_outputs: set[str]) -> list[_Op]:
    consumers: dict[str, int] = {}
    for op in ops:
        for t in set(op.inputs):
            consumers[t] = consumers.get(t, 0) + 1
    group_of: dict[str, _Op] = {}  # tensor -> the (possibly fused) op that writes it
    fused: list[_Op] = []
    for op in ops:
        first = op.inputs[0] if op.inputs else None
        fusable = op.kind in NORMS | ACTIVATIONS | ELEMENTWISE and len(op.outputs) == 1 and not op.joins
        host = group_of.get(first) if first is not None else None
        if (fusable and host is not None and consumers.get(first, 0) == 1 and first not in graph_outputs
                and len(host.outputs) == 1):
            host.inputs += [t for t in op.inputs[1:] if t not in host.inputs and t not in host.outputs]
            if op.kind not in NORMS:  # a folded batch norm's parameters are the conv's
                host.weights += [w for w in op.weights if w not in host.weights]
            del tensors[first]
            host.outputs = list(op.outputs)
            for t in op.outputs:
                tensors[t] = Tensor(t, tensors[t].bytes, host.name)
                group_of[t] = host
            host.kind = f"{host.kind}+{op.kind}"
            continue
        fused.append(op)
        for t in op.outputs:
            group_of[t] = op
    return fused
