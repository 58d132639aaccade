"""The quantized network as an ONNX file with Quantize/DequantizeLinear pairs (the QDQ format
ONNX Runtime, TensorRT and OpenVINO read), run and timed by ONNX Runtime.

The exporter (``torch.onnx.export``, dynamo) traces the plain copy of the fake-quantized module
(:func:`designer.quantization.fake.plain`: each weight and bias the value on its grid); the
graph is then rewritten, layer by layer of the plan, at the points the fake-quantized module
quantizes (so the file and the module compute the same function):

* the weight initializer becomes its integer codes (INT4, packed two to a byte, up to 4 bits;
  INT8 above) with per-channel float32 scales and zero points, read through a DequantizeLinear;
* the bias becomes int32 codes on the grid ``s_x s_c`` through a DequantizeLinear;
* the layer's data input and its output each pass a QuantizeLinear -> DequantizeLinear pair
  (uint8, the calibrated scale and zero point).

ONNX Runtime's graph optimiser fuses "DQ -> Conv -> Q" groups into integer kernels
(QLinearConv); anything between two quantized layers (ReLU, additions, pooling) runs in float.
Why a rewrite and not the exporter's own handling of ``fake_quantize_*``: the codes and scales
written are exactly the plan's (4-bit codes packed as INT4), checked against the traced values,
whatever the exporter version does with fake-quantization ops.
"""

from __future__ import annotations

import io
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from designer import files
from designer.quantization.fake import LayerQuant, plain
from designer.quantization.grid import storage_bits
from solvers.extras import require

OPSET = 21  # INT4 tensors in DequantizeLinear


def _onnx():
    require("onnxscript", "deploy")  # torch's exporter translates with it
    return require("onnx", "deploy")


def _export(model: nn.Module, example: torch.Tensor):
    """The plain float graph, batch dimension dynamic. Not the exporter's optimiser: it folds a
    Linear's weight transpose into a new, unnamed initializer (the layer would be lost); ONNX
    Runtime optimises the graph when it loads it."""
    import logging
    import warnings
    # the exporter logs a warning per torchvision op it cannot register (torchvision is not ours to need)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    batch = torch.export.Dim("batch", min=1)
    example = example.expand(max(2, example.shape[0]), *example.shape[1:]).contiguous()  # a size of 1 is specialised
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=OPSET, optimize=False,
                                    dynamic_shapes=({0: batch},), verbose=False)
    return program.model_proto


def _int_tensor(onnx, name: str, values: np.ndarray, bits: int):
    """An INT8 tensor, or INT4 packed two to a byte (low nibble first) up to 4 bits."""
    helper, proto = onnx.helper, onnx.TensorProto
    if storage_bits(bits) == 8:
        return onnx.numpy_helper.from_array(values.astype(np.int8), name)
    flat = values.astype(np.int8).flatten().astype(np.uint8) & 0xF
    if len(flat) % 2:
        flat = np.append(flat, np.uint8(0))
    packed = (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)
    return helper.make_tensor(name, proto.INT4, list(values.shape), packed.tobytes(), raw=True)


class _Rewrite:
    """The graph being rewritten: initializers by name, new initializers and nodes to insert."""

    def __init__(self, onnx, proto):
        self.onnx, self.graph = onnx, proto.graph
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.before: dict[int, list] = {}  # node index -> nodes to insert before it
        self.after: dict[int, list] = {}
        self.head: list = []  # weight and bias dequantization, first

    def constant(self, tensor) -> str:
        self.graph.initializer.append(tensor)
        return tensor.name

    def replace_initializer(self, old: str, new_nodes: list, output: str) -> None:
        self.graph.initializer.remove(self.initializers.pop(old))
        self.head += new_nodes
        for node in self.graph.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = output

    def layer_node(self, weight: str) -> tuple[int, object]:
        """The node computing the layer: the one reading its weight (through a Transpose, if any)."""
        readers = [(i, n) for i, n in enumerate(self.graph.node) if weight in n.input]
        if len(readers) == 1 and readers[0][1].op_type == "Transpose":
            transposed = readers[0][1].output[0]
            readers = [(i, n) for i, n in enumerate(self.graph.node) if transposed in n.input]
        if len(readers) != 1 or readers[0][1].op_type not in ("Conv", "Gemm", "MatMul"):
            raise ValueError(f"export: {weight} is read by {[n.op_type for _, n in readers]}, not one Conv, Gemm "
                             f"or MatMul: this layer cannot be written quantized")
        return readers[0]

    def output_node(self, index: int, node, bias: str) -> tuple[int, object]:
        """A MatMul's bias comes in a following Add: the layer's output is the Add's."""
        if node.op_type != "MatMul":
            return index, node
        readers = [(i, n) for i, n in enumerate(self.graph.node) if node.output[0] in n.input]
        if len(readers) == 1 and readers[0][1].op_type == "Add" and bias in readers[0][1].input:
            return readers[0]
        return index, node

    def qdq(self, name: str, qparams: tuple[float, int], tag: str) -> tuple[list, str]:
        """Quantize -> Dequantize nodes on tensor ``name``; their output's name."""
        helper, numpy_helper = self.onnx.helper, self.onnx.numpy_helper
        scale = self.constant(numpy_helper.from_array(np.array(qparams[0], np.float32), f"{tag}_scale"))
        zero = self.constant(numpy_helper.from_array(np.array(qparams[1], np.uint8), f"{tag}_zero_point"))
        return ([helper.make_node("QuantizeLinear", [name, scale, zero], [f"{tag}_quantized"], name=f"{tag}_Q"),
                 helper.make_node("DequantizeLinear", [f"{tag}_quantized", scale, zero], [f"{tag}_dequantized"],
                                  name=f"{tag}_DQ")], f"{tag}_dequantized")

    def finish(self) -> None:
        nodes = list(self.head)
        for i, node in enumerate(self.graph.node):
            nodes += self.before.get(i, []) + [node] + self.after.get(i, [])
        del self.graph.node[:]
        self.graph.node.extend(nodes)


def _weights(rewrite: _Rewrite, name: str, quant: LayerQuant, traced: np.ndarray) -> None:
    """The weight initializer as codes + scales + zero points (module doc)."""
    onnx = rewrite.onnx
    key = f"{name}.weight"
    scales = quant.scales.detach().cpu().numpy().astype(np.float32)
    shape = (-1,) + (1,) * (traced.ndim - 1)
    codes = np.round(traced / scales.reshape(shape))
    if not np.allclose(codes * scales.reshape(shape), traced, rtol=1e-5, atol=1e-7 * float(scales.max())):
        raise ValueError(f"export: {key} is not on its {quant.bits}-bit grid in the traced graph")
    parts = [rewrite.constant(_int_tensor(onnx, f"{key}_quantized", codes, quant.bits)),
             rewrite.constant(onnx.numpy_helper.from_array(scales, f"{key}_scale")),
             rewrite.constant(_int_tensor(onnx, f"{key}_zero_point", np.zeros(len(scales)), quant.bits))]
    node = onnx.helper.make_node("DequantizeLinear", parts, [f"{key}_dequantized"], axis=0, name=f"{key}_DQ")
    rewrite.replace_initializer(key, [node], f"{key}_dequantized")


def _bias(rewrite: _Rewrite, name: str, quant: LayerQuant) -> None:
    onnx = rewrite.onnx
    key = f"{name}.bias"
    bias = onnx.numpy_helper.to_array(rewrite.initializers[key]).astype(np.float64)
    step = (quant.input[0] * quant.scales.detach().cpu().double().numpy())
    parts = [rewrite.constant(onnx.numpy_helper.from_array(np.round(bias / step).astype(np.int32), f"{key}_quantized")),
             rewrite.constant(onnx.numpy_helper.from_array(step.astype(np.float32), f"{key}_scale"))]
    node = onnx.helper.make_node("DequantizeLinear", parts, [f"{key}_dequantized"], axis=0, name=f"{key}_DQ")
    rewrite.replace_initializer(key, [node], f"{key}_dequantized")


def to_qdq(proto, plan: dict[str, LayerQuant]):
    """Rewrite the exported float graph ``proto`` into QDQ form for ``plan`` (module doc)."""
    onnx = _onnx()
    rewrite = _Rewrite(onnx, proto)
    for name, quant in plan.items():
        key = f"{name}.weight"
        if key not in rewrite.initializers:
            raise ValueError(f"export: the traced graph has no initializer {key} (the layer is not called, or the "
                             f"exporter renamed it)")
        index, node = rewrite.layer_node(key)
        out_index, out_node = rewrite.output_node(index, node, f"{name}.bias")
        _weights(rewrite, name, quant, onnx.numpy_helper.to_array(rewrite.initializers[key]))
        if f"{name}.bias" in rewrite.initializers:
            _bias(rewrite, name, quant)
        nodes, quantized = rewrite.qdq(node.input[0], quant.input, f"{name}.input")
        rewrite.before.setdefault(index, []).extend(nodes)
        node.input[0] = quantized
        original = out_node.output[0]
        out_node.output[0] = f"{name}.output_float"
        nodes, quantized = rewrite.qdq(out_node.output[0], quant.output, f"{name}.output")
        nodes[-1].output[0] = original  # every reader (and a graph output) sees the dequantized tensor
        rewrite.after.setdefault(out_index, []).extend(nodes)
    rewrite.finish()
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model: nn.Module, plan: dict[str, LayerQuant] | None, example: torch.Tensor, path: str | Path) -> int:
    """Write ``model`` (fake-quantized, with its ``plan``; None: the float model) to ``path`` as
    ONNX; the file's size in bytes."""
    onnx = _onnx()
    traced = plain(model).eval().cpu() if plan else model.eval().cpu()
    proto = _export(traced, example.cpu())
    if plan:
        proto = to_qdq(proto, plan)
    buffer = io.BytesIO()
    onnx.save_model(proto, buffer)
    files.write_bytes(path, buffer.getvalue())
    return len(buffer.getvalue())


def payload_bytes(path: str | Path, plan: dict[str, LayerQuant]) -> int:
    """Bytes of the quantized layers' tensors as the file stores them (codes, scales, zero
    points, int32 bias and its scales): what :class:`~designer.quantization.budgets.ModelSize`
    budgets, recounted on the file."""
    onnx = _onnx()
    model = onnx.load(str(path))
    wanted = {f"{name}.{part}_{kind}" for name in plan for part in ("weight", "bias")
              for kind in ("quantized", "scale", "zero_point")}
    return sum(len(t.raw_data) if t.raw_data else onnx.numpy_helper.to_array(t).nbytes
               for t in model.graph.initializer if t.name in wanted)


def session(path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session with every graph optimisation (the QDQ fusions included)."""
    ort = require("onnxruntime", "deploy")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(runner, x: torch.Tensor) -> torch.Tensor:
    """The file's output on ``x`` (a session from :func:`session`)."""
    name = runner.get_inputs()[0].name
    return torch.from_numpy(runner.run(None, {name: x.detach().cpu().numpy().astype(np.float32)})[0])


def accuracy(runner, split, batch_size: int = 256) -> float:
    """The file's top-1 accuracy on ``split`` (a TensorDataset of images and labels)."""
    images, labels = split.tensors[0], split.tensors[1]
    correct = sum(int((run_onnx(runner, images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum())
                  for i in range(0, len(images), batch_size))
    return correct / len(images)


def latency(runner, example: torch.Tensor, batch: int, repeats: int = 20) -> float:
    """Median seconds of one run at ``batch`` (after two warm-up runs)."""
    x = example[:1].expand(batch, *example.shape[1:]).contiguous()
    for _ in range(2):
        run_onnx(runner, x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_onnx(runner, x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
