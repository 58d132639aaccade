"""A ``torch.nn.Module`` as a tensor graph: captured with ``torch.export`` (``torch.fx`` as
fallback) or, for one training step, AOTAutograd's joint graph; read by :mod:`designer.mapping.sources.aten`.

The exported program is decomposed to core ATen, so attention is matmuls and a softmax whose
score matrix is a tensor of its own, except what an accelerator runs as one operator and the
decomposition would spread over several (:data:`KEPT_WHOLE`): SiLU (else ``sigmoid`` + ``mul``),
GELU, Hardswish and Hardsigmoid (else ``add``, ``clamp``, ``mul``, ``div``), Mish (else five
ops), attention's ``_safe_softmax`` (else its NaN guard materialises score-sized tensors) and
``roll`` (Swin's shifted windows; else one ``index_select`` per rolled dimension).
They stay whole, so fusion joins the activations to their producer.

What export cannot capture (data-dependent control flow, say) is retried with ``torch.fx``
symbolic tracing; if both fail, a :class:`~designer.mapping.core.graph.GraphError` names what failed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from contextlib import contextmanager
from functools import partial

import torch
from torch import nn

from designer.mapping.sources.aten import import_fx
from designer.mapping.tiling.plan import TilePlan, Tiling, mark_joins, plan, tile_ops
from designer.mapping.core.graph import GraphError, Operator, Tensor, TensorGraph

# ops decomposition would spread over several operators (module docstring); kept whole
KEPT_WHOLE = ("silu", "gelu", "hardswish", "hardsigmoid", "mish", "_safe_softmax", "roll")


def decompositions():
    """Core ATen's decomposition table without :data:`KEPT_WHOLE`."""
    table = torch.export.default_decompositions()
    for name in KEPT_WHOLE:
        for overload in getattr(torch.ops.aten, name).overloads():
            table.pop(getattr(getattr(torch.ops.aten, name), overload), None)
    return table


def decomposed(program):
    """An ``ExportedProgram`` in core ATen, :data:`KEPT_WHOLE` kept whole (a decomposition torch
    lacks: the ops are kept as they are)."""
    with contextlib.suppress(Exception), quiet_torch():
        program = program.run_decompositions(decompositions())
    return program


def from_exported(program, bytes_per_element: int = 1, include_weights: bool = False, name: str = "",
                  fuse: bool = True, tiling: Tiling | None = None) -> TensorGraph:
    """The tensor graph of an ``ExportedProgram`` (see the module docstring); ``tiling``: its
    prefix computed patch by patch (:mod:`designer.mapping.tiling.plan`)."""
    return tiled(decomposed(program), tiling, bytes_per_element, include_weights, name, fuse)[0]


def tiled(program, tiling: Tiling | None, bytes_per_element: int = 1, include_weights: bool = False, name: str = "",
          fuse: bool = True, barrier: frozenset[str] | None = None) -> tuple[TensorGraph, TilePlan | None]:
    """The tensor graph of a decomposed ``ExportedProgram`` with ``tiling`` applied (None: as
    it is), and the tiling's plan (regions, MACs). ``barrier``: untiled, but nothing that reads
    this prefix fused into it (:func:`designer.mapping.tiling.plan.mark_joins`)."""
    inputs = program.graph_signature.input_specs
    specs = {spec.arg.name: spec.kind.name for spec in inputs if hasattr(spec.arg, "name")}
    targets = {spec.arg.name: spec.target for spec in inputs if hasattr(spec.arg, "name") and spec.target}
    transform = tile_plan = None
    if barrier is not None:
        transform = partial(mark_joins, prefix=barrier)
    if tiling is not None:
        tile_plan = plan(program.graph, {n for n, kind in specs.items() if kind == "USER_INPUT"}, tiling)
        values = {node.name: node.meta.get("val") for node in program.graph.nodes}
        transform = partial(tile_ops, tile_plan=tile_plan, values=values, bytes_per_element=bytes_per_element)
    graph = import_fx(program.graph, specs, targets, bytes_per_element, include_weights, name, fuse, transform)
    return graph, tile_plan


def export(module: nn.Module, example_input: torch.Tensor):
    """``module`` (in eval mode) exported at ``example_input`` and decomposed: what the importer,
    tiling and its numerical check read."""
    with quiet_torch():
        return decomposed(torch.export.export(module.eval(), (example_input,)))


def training_graph(module: nn.Module, example_input: torch.Tensor, bytes_per_element: int = 1,
                   include_weights: bool = False, name: str = "", fuse: bool = True) -> TensorGraph:
    """The forward and backward graph of one training step of ``module`` (AOTAutograd's joint
    graph, in training mode): activations saved for the backward pass, their gradients and the
    weights' gradients are tensors, as in Checkmate's exported training graphs; attention's
    backward is one fused operator (no score-gradient tensor). The loss is the mean square of the
    output (the graph's shape does not depend on which loss). Batch norm in training mode needs
    more than one value per channel: a batch of 2 where a feature map shrinks to 1 x 1."""
    from torch._functorch.aot_autograd import aot_export_module

    class Step(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor):
            return (self.inner(x).float().square().mean(),)

    from torch._decomp import core_aten_decompositions
    # attention's forward decomposed (matmuls and a softmax: the score matrix is a tensor); its
    # backward stays torch's fused SDPA backward (torch 2.13 on CPU), one operator that recomputes
    # the scores inside, so no score-gradient tensor appears. Batch norm and the rest kept whole,
    # one operator per layer as in Checkmate's graphs
    attention = {op: rule for op, rule in core_aten_decompositions().items() if "scaled_dot_product" in str(op)}
    try:
        with quiet_torch():
            joint, signature = aot_export_module(Step(module).train(), [example_input], trace_joint=True,
                                                 output_loss_index=0, decompositions=attention)
    except Exception as error:  # noqa: BLE001
        hint = ("; batch norm trains on more than one value per channel: give a batch of 2 or more "
                "(--input-shape 2,C,H,W)" if "more than 1 value per channel" in str(error) else "")
        raise GraphError(f"cannot capture the training step of {type(module).__name__}: {_first_line(error)}"
                         f"{hint}") from None
    placeholders = [n for n in joint.graph.nodes if n.op == "placeholder"]
    kinds = ["PARAMETER"] * len(signature.parameters) + ["BUFFER"] * len(signature.buffers)
    names = [p.removeprefix("inner.") for p in list(signature.parameters) + list(signature.buffers)]
    specs = {node.name: kind for node, kind in zip(placeholders, kinds)}
    targets = {node.name: target for node, target in zip(placeholders, names)}
    return import_fx(joint.graph, specs, targets, bytes_per_element, include_weights,
                   name or f"{type(module).__name__} (training)", fuse)


def from_torch(module: nn.Module, example_input: torch.Tensor, bytes_per_element: int = 1,
               include_weights: bool = False, name: str = "", fuse: bool = True,
               tiling: Tiling | None = None) -> TensorGraph:
    """Any ``nn.Module`` at ``example_input``: exported (in eval mode) and imported, fused by
    default; ``torch.fx`` when export fails (see the module docstring). ``bytes_per_element``
    defaults to 1 (the 8-bit setting of COSMA)."""
    module = module.eval()
    try:
        with quiet_torch():
            program = torch.export.export(module, (example_input,))
    except Exception as export_error:  # noqa: BLE001 - export has many failure kinds
        if tiling is not None:
            raise GraphError(f"tiling needs torch.export, which failed on {type(module).__name__}: "
                             f"{_first_line(export_error)}") from None
        try:
            with quiet_torch():
                return from_torch_fx(module, example_input, bytes_per_element, include_weights, name)
        except Exception as fx_error:  # noqa: BLE001
            raise GraphError(f"cannot capture {type(module).__name__}: torch.export failed "
                             f"({_first_line(export_error)}) and torch.fx failed ({_first_line(fx_error)})") from None
    return from_exported(program, bytes_per_element, include_weights, name or type(module).__name__, fuse, tiling)


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
