"""Any module as a chain of segments, so that pruning one layer re-runs only what follows it.

``torch.fx`` traces the module; a *cut* is a point of the graph's order where exactly one
value is live (it alone flows on: between two residual blocks, after the stem, before the
classifier). The nodes between consecutive cuts form a segment, a function of one tensor.
Distortion curves cache each segment's input once and, for a layer in segment i, run segment i
with the pruned weight and the segments after it. A module fx cannot trace (data-dependent
control flow), or whose prunable layer runs twice (shared weights), is one segment: the whole
model, as correct, only slower.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import fx, nn


@dataclass
class Segment:
    """Nodes of a traced graph from one cut to the next; ``layers`` the prunable modules in it."""

    graph_module: fx.GraphModule | None
    nodes: list[fx.Node] = field(default_factory=list)
    input_node: fx.Node | None = None
    layers: set[str] = field(default_factory=set)
    whole: nn.Module | None = None  # the untraceable fallback: the model itself

    def run(self, x: torch.Tensor, override: tuple[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The segment on input ``x``; ``override`` = (layer name, weight) runs that layer with
        the given weight instead of its own (``torch.func.functional_call``: vmap-friendly)."""
        if self.whole is not None:
            if override is None:
                return self.whole(x)
            return torch.func.functional_call(self.whole, {f"{override[0]}.weight": override[1]}, (x,))
        env: dict[fx.Node, object] = {self.input_node: x}
        gm = self.graph_module

        def value(arg):
            if isinstance(arg, fx.Node):
                if arg not in env:  # a parameter or buffer fetched in an earlier segment
                    env[arg] = _fetch(gm, arg.target)
                return env[arg]
            return arg

        for node in self.nodes:
            args = fx.node.map_aggregate(node.args, value)
            kwargs = fx.node.map_aggregate(node.kwargs, value)
            if node.op == "get_attr":
                env[node] = _fetch(gm, node.target)
            elif node.op == "call_module":
                module = gm.get_submodule(node.target)
                if override is not None and node.target == override[0]:
                    env[node] = torch.func.functional_call(module, {"weight": override[1]}, args, kwargs)
                else:
                    env[node] = module(*args, **kwargs)
            elif node.op == "call_function":
                env[node] = node.target(*args, **kwargs)
            elif node.op == "call_method":
                env[node] = getattr(args[0], node.target)(*args[1:], **kwargs)
        return env[self.nodes[-1]]


def _fetch(gm: fx.GraphModule, target: str):
    value = gm
    for part in target.split("."):
        value = getattr(value, part)
    return value


def segments(model: nn.Module, prunable: list[str]) -> list[Segment]:
    """The chain of segments of ``model`` (see the module docstring)."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - fx's failures are many kinds; the whole model still works
        return [Segment(None, whole=model, layers=set(prunable))]
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    calls = [n.target for n in nodes if n.op == "call_module" and n.target in set(prunable)]
    if len(placeholders) != 1 or len(calls) != len(set(calls)) or set(calls) != set(prunable):
        return [Segment(None, whole=model, layers=set(prunable))]
    position = {n: i for i, n in enumerate(nodes)}
    last_use = {n: max((position[u] for u in n.users), default=position[n]) for n in nodes}
    chain: list[Segment] = []
    current = Segment(gm, input_node=placeholders[0])
    live = {placeholders[0]}
    for i, node in enumerate(nodes):
        if node.op in ("placeholder", "output"):
            continue
        current.nodes.append(node)
        if node.op == "call_module" and node.target in set(prunable):
            current.layers.add(node.target)
        if node.op != "get_attr" and last_use[node] > i:
            live.add(node)
        live = {n for n in live if last_use[n] > i}
        if live == {node} and any(u.op != "output" for u in node.users):
            chain.append(current)
            current = Segment(gm, input_node=node)
    if current.nodes:
        chain.append(current)
    # the output node's value must be the last segment's result
    output = next(n for n in nodes if n.op == "output")
    if not chain or output.args[0] is not chain[-1].nodes[-1]:
        return [Segment(None, whole=model, layers=set(prunable))]
    return chain
