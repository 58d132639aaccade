"""A ``torch.nn.Module`` as a tensor graph, through ``torch.export`` (``torch.fx`` as fallback).

The exported program is decomposed to core ATen, so attention is matmuls and a softmax whose
score matrix is a tensor of its own. Then:

* **values**: every tensor an operator computes is a tensor of the graph, sized
  ``numel x bytes_per_element``; a tuple-returning op (layer norm, batch norm, max-pool with
  indices) has one output per element something downstream uses (``getitem`` picks it);
* **aliases**: views and copies of layout (view, reshape, permute, transpose, expand, squeeze,
  unsqueeze, slice, select, split/chunk/unbind, clone, contiguous, detach, alias) create no
  tensor: they name the tensor they view;
* **weights**: parameters, buffers and constants are weight tensors (no producer, loaded from
  host) when ``include_weights``, and are left out otherwise, never taken for activations;
* **fusion** (``fuse``, on by default): batch norm (folded: its parameters are the conv's),
  activations and elementwise ops join the operator that produces their first input when they
  are its only consumer, so conv + BN + ReLU, add + ReLU and elementwise chains are one
  operator that reads its inputs and weights and writes one output, as an accelerator runs them.

What export cannot capture (data-dependent control flow, say) is retried with ``torch.fx``
symbolic tracing; if both fail, a :class:`~designer.mapping.graph.GraphError` names what failed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from designer.mapping.graph import GraphError, Operator, Tensor, TensorGraph

ALIASES = {"view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "squeeze", "unsqueeze",
           "slice", "select", "split", "split_with_sizes", "chunk", "unbind", "clone", "contiguous", "detach",
           "alias", "lift_fresh_copy", "_to_copy", "flatten", "view_as", "expand_as", "unflatten"}
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


def _kind(node) -> str:
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


def from_exported(program, bytes_per_element: int = 1, include_weights: bool = False, name: str = "",
                  fuse: bool = True) -> TensorGraph:
    """The tensor graph of an ``ExportedProgram`` (see the module docstring)."""
    with contextlib.suppress(Exception), quiet_torch():  # a decomposition torch lacks: keep the ops as they are
        program = program.run_decompositions()
    specs = {spec.arg.name: spec.kind.name for spec in program.graph_signature.input_specs
             if hasattr(spec.arg, "name")}
    targets = {spec.arg.name: spec.target for spec in program.graph_signature.input_specs
               if hasattr(spec.arg, "name") and spec.target}
    return _import(program.graph, specs, targets, bytes_per_element, include_weights, name, fuse)


def training_graph(module: nn.Module, example_input: torch.Tensor, bytes_per_element: int = 1,
                   include_weights: bool = False, name: str = "", fuse: bool = True) -> TensorGraph:
    """The forward and backward graph of one training step of ``module`` (AOTAutograd's joint
    graph, in training mode): activations saved for the backward pass, their gradients and the
    weights' gradients are tensors, as in Checkmate's exported training graphs. The loss is the
    mean square of the output (the graph's shape does not depend on which loss)."""
    from torch._functorch.aot_autograd import aot_export_module

    class Step(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor):
            return (self.inner(x).float().square().mean(),)

    from torch._decomp import core_aten_decompositions
    # attention decomposed (matmuls and a softmax: the score matrix is a tensor, its gradient too);
    # batch norm and the rest kept whole, one operator per layer as in Checkmate's graphs
    attention = {op: rule for op, rule in core_aten_decompositions().items() if "scaled_dot_product" in str(op)}
    try:
        with quiet_torch():
            joint, signature = aot_export_module(Step(module).train(), [example_input], trace_joint=True,
                                                 output_loss_index=0, decompositions=attention)
    except Exception as error:  # noqa: BLE001
        raise GraphError(f"cannot capture the training step of {type(module).__name__}: {_first_line(error)}") from None
    placeholders = [n for n in joint.graph.nodes if n.op == "placeholder"]
    kinds = ["PARAMETER"] * len(signature.parameters) + ["BUFFER"] * len(signature.buffers)
    names = [p.removeprefix("inner.") for p in list(signature.parameters) + list(signature.buffers)]
    specs = {node.name: kind for node, kind in zip(placeholders, kinds)}
    targets = {node.name: target for node, target in zip(placeholders, names)}
    return _import(joint.graph, specs, targets, bytes_per_element, include_weights,
                   name or f"{type(module).__name__} (training)", fuse)


def _import(graph, specs: dict[str, str], targets: dict[str, str], bytes_per_element: int, include_weights: bool,
            name: str, fuse: bool) -> TensorGraph:
    tensors: dict[str, Tensor] = {}
    where: dict[str, object] = {}  # fx node name -> tensor name (or tuple of names) or None
    ops: list[_Op] = []

    def size_of(value) -> int:
        return max(1, int(value.numel()) * bytes_per_element)

    def resolve(arg) -> list[str]:
        found = []
        for item in arg if isinstance(arg, (list, tuple)) else [arg]:
            if isinstance(item, (list, tuple)):
                found += resolve(item)
            elif hasattr(item, "name") and item.name in where:
                value = where[item.name]
                found += [value] if isinstance(value, str) else [v for v in (value or []) if v]
        return found

    for node in graph.nodes:
        value = node.meta.get("val")
        if node.op == "placeholder":
            kind = specs.get(node.name, "USER_INPUT")
            if kind == "USER_INPUT" and isinstance(value, torch.Tensor):
                tensors[node.name] = Tensor(node.name, size_of(value), None)
                where[node.name] = node.name
            elif include_weights and isinstance(value, torch.Tensor):
                weight = targets.get(node.name, node.name)  # the parameter's own name, e.g. stem.conv.weight
                tensors[weight] = Tensor(weight, size_of(value), None)
                specs[weight] = kind
                where[node.name] = weight
            else:
                where[node.name] = None  # a weight left out (or a non-tensor input)
            continue
        if node.op == "output" or node.op != "call_function":
            continue
        kind = _kind(node)
        if kind == "getitem":
            source, index = node.args
            picked = where.get(source.name)
            if isinstance(picked, list):
                where[node.name] = picked[index] if index < len(picked) else None
            else:
                where[node.name] = picked  # an element of a view tuple: the tensor it views
            continue
        sources = resolve(node.args) + resolve(list(node.kwargs.values()))
        activations = [s for s in dict.fromkeys(sources) if tensors[s].producer is not None
                       or specs.get(s, "USER_INPUT") == "USER_INPUT"]
        weights = [s for s in dict.fromkeys(sources) if s not in activations]
        if kind in ALIASES and activations:
            where[node.name] = activations[0] if not isinstance(value, (tuple, list)) else \
                [activations[0]] * len(value)
            continue
        if kind in ALIASES:  # a view of a weight: the weight itself
            where[node.name] = weights[0] if weights else None
            continue
        outputs = _tensors_of(value)
        if not outputs:
            where[node.name] = None
            continue
        used = _used_outputs(node, len(outputs)) if isinstance(value, (tuple, list)) else [0]
        names = []
        for i, tensor in enumerate(outputs):
            if i not in used:
                names.append(None)
                continue
            tensor_name = node.name if len(outputs) == 1 else f"{node.name}.{i}"
            tensors[tensor_name] = Tensor(tensor_name, size_of(tensor), node.name)
            names.append(tensor_name)
        where[node.name] = names[0] if not isinstance(value, (tuple, list)) else names
        if any(names):
            ops.append(_Op(node.name, kind, activations, [n for n in names if n], weights))
    outputs = resolve(next(n for n in graph.nodes if n.op == "output").args)
    if not ops:
        raise GraphError(f"{name}: the captured graph computes nothing")
    if fuse:
        ops = _fuse(ops, tensors, set(outputs))
    return _build(ops, tensors, include_weights, name)


def _used_outputs(node, count: int) -> set[int]:
    used = set()
    for user in node.users:
        if _kind(user) == "getitem" and user.users:
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
        fusable = op.kind in NORMS | ACTIVATIONS | ELEMENTWISE and len(op.outputs) == 1
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


def _build(ops: list[_Op], tensors: dict[str, Tensor], include_weights: bool, name: str) -> TensorGraph:
    operators = [Operator(op.name, list(dict.fromkeys(op.inputs + (op.weights if include_weights else []))),
                          list(op.outputs)) for op in ops]
    used = {t for op in operators for t in op.inputs + op.outputs}
    return TensorGraph(operators, [t for n, t in tensors.items() if n in used], name)


def from_torch(module: nn.Module, example_input: torch.Tensor, bytes_per_element: int = 1,
                include_weights: bool = False, name: str = "", fuse: bool = True) -> TensorGraph:
    """Any ``nn.Module`` at ``example_input``: exported (in eval mode) and imported, fused by
    default; ``torch.fx`` when export fails (see the module docstring). ``bytes_per_element``
    defaults to 1 (the 8-bit setting of COSMA)."""
    module = module.eval()
    try:
        with quiet_torch():
            program = torch.export.export(module, (example_input,))
    except Exception as export_error:  # noqa: BLE001 - export has many failure kinds
        try:
            with quiet_torch():
                return from_torch_fx(module, example_input, bytes_per_element, include_weights, name)
        except Exception as fx_error:  # noqa: BLE001
            raise GraphError(f"cannot capture {type(module).__name__}: torch.export failed "
                             f"({_first_line(export_error)}) and torch.fx failed ({_first_line(fx_error)})") from None
    return from_exported(program, bytes_per_element, include_weights, name or type(module).__name__, fuse)


def from_torch_fx(module, example_input, bytes_per_element: int = 1, include_weights: bool = False,
                  name: str = "") -> TensorGraph:
    """Trace ``module`` with ``torch.fx`` and size every value by shape propagation on
    ``example_input`` (unfused: every module and function call is an operator)."""
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    traced = symbolic_trace(module)
    ShapeProp(traced).propagate(example_input)
    operators, tensors, known = [], [], set()
    for node in traced.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if node.op == "output":
            continue
        if meta is not None and not hasattr(meta, "shape"):
            raise GraphError(f"node {node.name!r} ({node.target}) returns several values, which the fx importer "
                             f"cannot size; torch.export handles them")
        size = int(torch.Size(meta.shape).numel()) * bytes_per_element if meta is not None else 0
        if size <= 0:
            continue
        if node.op in ("placeholder", "get_attr"):
            tensors.append(Tensor(node.name, size, None))
            known.add(node.name)
            continue
        inputs = list(dict.fromkeys(a.name for a in node.all_input_nodes if a.name in known))
        if include_weights and node.op == "call_module":
            for pname, param in traced.get_submodule(node.target).named_parameters(recurse=False):
                weight = f"{node.name}.{pname}"
                tensors.append(Tensor(weight, param.numel() * bytes_per_element, None))
                inputs.append(weight)
        tensors.append(Tensor(node.name, size, node.name))
        known.add(node.name)
        operators.append(Operator(node.name, inputs, [node.name]))
    return TensorGraph(operators, tensors, name or type(module).__name__)



@contextmanager
def quiet_torch():
    """torch's own log lines and warnings off while capturing: a capture that fails is reported
    as one error line naming the cause, not after dozens of lines of graph dumps."""
    previous = logging.root.manager.disable  # torch's loggers set their own levels: switch them all off
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):  # and graph dumps it prints
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
