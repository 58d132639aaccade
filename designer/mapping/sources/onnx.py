"""An ONNX file as a tensor graph, each tensor at the bytes its element type takes: what the
mapper plans for a quantized network is the artifact that runs, not a model of it.

An integer runtime (ONNX Runtime's QLinearConv, TFLite Micro, TinyEngine) stores a tensor that
passes a QuantizeLinear -> DequantizeLinear pair as its 8-bit codes: 1 byte per element, and a
float tensor at 4. So the Q/DQ plumbing is folded away: a DequantizeLinear's output is its
input's codes; an operator whose only reader is a QuantizeLinear writes the codes directly (the
integer kernel requantizes its accumulator); every other node is an operator on tensors of its
own element type (at batch 1, as ONNX Runtime computes it). Constant subgraphs (shape
arithmetic, the batch size's included) are what the runtime folds when it loads the file: left
out. Weights, with ``include_weights``: an initializer read through a DequantizeLinear at its
stored bytes (INT4 packed two to a byte).
"""

from __future__ import annotations

import math
from pathlib import Path

from designer.mapping.core.graph import GraphError, Operator, Tensor, TensorGraph
from solvers.extras import require

PLUMBING = ("QuantizeLinear", "DequantizeLinear")


def _element_bytes(onnx, elem_type: int) -> float:
    if elem_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
        return 0.5
    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize


def _observed(onnx, path: Path) -> tuple[object, dict[str, tuple[int, tuple[int, ...]]]]:
    """The model, and each value's element type and shape at batch 1, as ONNX Runtime computes
    them on a zero input (shape inference cannot follow the exporter's shape arithmetic through
    a dynamic batch dimension; running it can): every node's outputs are made graph outputs and
    the graph runs once, unoptimised so no name changes."""
    import numpy as np
    ort = require("onnxruntime", "deploy")
    model = onnx.load(str(path))
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=o) for n in probe.graph.node for o in n.output
                              if o and o not in known)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {}
    for value in session.get_inputs():
        shape = [1 if not isinstance(d, int) else d for d in value.shape]
        kind = {"tensor(float)": np.float32, "tensor(double)": np.float64}.get(value.type, np.int64)
        feeds[value.name] = np.zeros(shape, kind)
    names = [o.name for o in session.get_outputs()]
    found = {}
    for name, array in [*feeds.items(), *zip(names, session.run(names, feeds))]:
        found[name] = (onnx.helper.np_dtype_to_tensor_dtype(array.dtype), tuple(array.shape))
    for tensor in model.graph.initializer:
        found[tensor.name] = (tensor.data_type, tuple(tensor.dims))
    return model, found


def from_onnx(path: str | Path, include_weights: bool = False) -> TensorGraph:
    """The tensor graph of the ONNX file at ``path`` (module doc)."""
    onnx = require("onnx", "deploy")
    path = Path(path)
    model, types = _observed(onnx, path)
    nodes = list(model.graph.node)
    initializers = {t.name for t in model.graph.initializer}
    constant = set(initializers)
    for node in nodes:  # a node reading only constants (or shapes, fixed at batch 1) is folded at load time
        if node.op_type in ("Shape", "Size") or all(not i or i in constant for i in node.input):
            constant.update(node.output)
    producer = {o: n for n in nodes for o in n.output}
    readers: dict[str, list] = {}
    for node in nodes:
        for i in node.input:
            readers.setdefault(i, []).append(node)
    alias: dict[str, str] = {}
    for node in nodes:
        if node.op_type == "DequantizeLinear" and node.input[0] not in constant:
            alias[node.output[0]] = node.input[0]
        elif node.op_type == "QuantizeLinear":
            source = node.input[0]
            if source in producer and len(readers.get(source, [])) == 1:
                alias[source] = node.output[0]  # the kernel writes the codes itself

    def stored(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    weights_of = {n.output[0]: n.input[0] for n in nodes
                  if n.op_type == "DequantizeLinear" and n.input[0] in initializers}
    operators, tensors = [], {}

    def tensor(name: str, made_by: str | None) -> str:
        if name not in tensors:
            if name not in types:
                raise GraphError(f"{path}: running the graph gave no value for {name!r}")
            elem, shape = types[name]
            tensors[name] = Tensor(name, max(1, math.ceil(math.prod(shape) * _element_bytes(onnx, elem))), made_by)
        elif made_by is not None:
            tensors[name].producer = made_by
        return name

    for index, node in enumerate(nodes):
        if node.op_type in PLUMBING or all(o in constant for o in node.output):
            continue
        name = node.name or f"{node.op_type}_{index}"
        inputs = [tensor(stored(i), None) for i in node.input if i and i not in constant]
        if include_weights:
            inputs += [tensor(weights_of[i], None) for i in node.input if i in weights_of]
        outputs = [tensor(stored(o), name) for o in node.output if o]
        operators.append(Operator(name, list(dict.fromkeys(inputs)), outputs))
    return TensorGraph(operators, list(tensors.values()), model.graph.name or path.stem)
