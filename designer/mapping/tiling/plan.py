r"""Patch-based tiling (MCUNetV2's idea) as a graph transformation: the memory-heavy prefix of
a network, up to a *cut* tensor C, computed k x k patches at a time.

A patch is one output tile of C (rows [r0, r1), columns [c0, c1), the k x k grid splitting
C's height and width as evenly as whole rows allow). Its *receptive regions* follow backwards
from C through the prefix, exactly, by each operator's window:

  convolution / pooling (kernel K, stride s, padding p, dilation d), output rows [a, b):
      input rows [a s - p, (b - 1) s - p + d (K - 1) + 1), clipped to the input, the clipped
      rows being the operator's own padding (zeros; -inf for max pooling)
  pointwise (batch norm, activations, adds of equal shapes): the same rows and columns

and a tensor read by several operators needs the bounding box of what each reads. Each patch
is then a copy of the prefix on its regions (its own operators and tensors, sized channels x
region), reading the shared weights; the patches' tiles of C are disjoint and together are C,
so whatever reads C reads all of them, and nothing joins them. Overlapping halos are
recomputed: :attr:`TilePlan.extra_macs` counts the convolutions' extra multiply-accumulates.

The prefix is a prefix of the exported graph's operators whose only tensor leaving it is C
(:func:`cut_points`), made of convolutions, max/average pooling (average without padding),
batch norm, activations and elementwise ops of equal shapes. :func:`run_tiled` evaluates a plan
patch by patch in torch, for the numerical check against the untiled model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from designer.mapping.sources.aten import ACTIVATIONS, ELEMENTWISE, NORMS, kind_of
from designer.mapping.core.graph import Tensor

SPATIAL = {"convolution", "max_pool2d_with_indices", "max_pool2d", "avg_pool2d"}
POINTWISE = NORMS | ACTIVATIONS | ELEMENTWISE | {"getitem", "clone", "detach", "alias", "contiguous"}


@dataclass(frozen=True)
class Tiling:
    """Tile the prefix ending at the fx node ``cut`` into ``k`` x ``k`` patches."""

    cut: str
    k: int


@dataclass(frozen=True)
class Rect:
    """Rows [r0, r1) and columns [c0, c1)."""

    r0: int
    r1: int
    c0: int
    c1: int

    def union(self, other: Rect | None) -> Rect:
        if other is None:
            return self
        return Rect(min(self.r0, other.r0), max(self.r1, other.r1), min(self.c0, other.c0), max(self.c1, other.c1))

    @property
    def area(self) -> int:
        return (self.r1 - self.r0) * (self.c1 - self.c0)


@dataclass(frozen=True)
class TilePlan:
    tiling: Tiling
    region: dict[str, list[Rect | None]]  # per prefix node, per patch, the rows and columns it computes
    user_inputs: frozenset[str]
    macs: int  # the prefix's convolution MACs, untiled
    tiled_macs: int  # ... patch by patch, halos recomputed
    full: dict[str, int]  # per prefix node (and input), its whole height x width

    @property
    def extra_macs(self) -> int:
        return self.tiled_macs - self.macs

    @property
    def nodes(self) -> list[str]:
        return list(self.region)


def _window(node) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(kernel, stride, padding, dilation), each (rows, columns), of a convolution or pooling."""
    def pair(value, default):
        value = default if value is None or value == [] else value
        return (value, value) if isinstance(value, int) else (value[0], value[-1])

    args, kind = node.args, kind_of(node)
    if kind == "convolution":
        shape = args[1].meta["val"].shape
        return (shape[2], shape[3]), pair(args[3], 1), pair(args[4], 0), pair(args[5], 1)
    kernel = pair(args[1], 1)
    stride = pair(args[2] if len(args) > 2 else None, kernel)
    padding = pair(args[3] if len(args) > 3 else 0, 0)
    dilation = pair(args[4] if len(args) > 4 and kind.startswith("max") else 1, 1)
    return kernel, stride, padding, dilation


def needs(node, out: Rect) -> Rect:
    """The input rows and columns (unclipped: the operator's padding lies outside) that
    ``out`` of a convolution or pooling reads."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _window(node)
    return Rect(out.r0 * sh - ph, (out.r1 - 1) * sh - ph + dh * (kh - 1) + 1,
                out.c0 * sw - pw, (out.c1 - 1) * sw - pw + dw * (kw - 1) + 1)


def _spatial(value) -> tuple[int, int] | None:
    return tuple(value.shape[2:]) if isinstance(value, torch.Tensor) and value.dim() == 4 else None


def _tensor_args(node, names: set[str]) -> list:
    return [a for a in node.all_input_nodes if a.name in names]


def _tileable(node, inside: set[str]) -> bool:
    kind, value = kind_of(node), node.meta.get("val")
    if kind == "getitem":
        return node.args[0].name in inside
    shape = _spatial(value[0] if isinstance(value, (tuple, list)) else value)
    if shape is None:
        return False
    if kind in SPATIAL:
        if kind == "convolution":
            return not node.args[6]  # transposed convolutions are not windows of their input
        ceil_mode = node.args[5 if kind.startswith("max") else 4] if len(node.args) > (5 if kind.startswith("max")
                                                                                        else 4) else False
        return not ceil_mode and (kind != "avg_pool2d" or _window(node)[2] == (0, 0))
    return kind in POINTWISE and all(_spatial(a.meta.get("val")) == shape for a in _tensor_args(node, inside))


def cut_points(fx_graph, user_inputs: set[str]) -> list[str]:
    """The fx nodes that can end a tiled prefix, in graph order: every operator up to the node
    is tileable, reads only the graph's input, weights and operators before it, and only the
    node's value is read after it."""
    nodes = [n for n in fx_graph.nodes if n.op == "call_function"]
    inside, found = set(user_inputs), []
    position = {n.name: i for i, n in enumerate(nodes)}
    last_use: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if not _tileable(node, inside):
            break
        inside.add(node.name)
        last_use[node.name] = max((position.get(u.name, len(nodes)) for u in node.users), default=i)
        value = node.meta.get("val")
        if isinstance(value, torch.Tensor) and all(last_use[n.name] <= i for n in nodes[:i] if n.name in last_use) \
                and any(kind_of(n) in SPATIAL for n in nodes[:i + 1]):
            found.append(node.name)
    return found


def _grid(size: int, k: int) -> list[tuple[int, int]]:
    bounds = [round(size * i / k) for i in range(k + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _clip(rect: Rect, shape: tuple[int, int]) -> Rect:
    return Rect(max(rect.r0, 0), min(rect.r1, shape[0]), max(rect.c0, 0), min(rect.c1, shape[1]))


def _conv_macs(node, out: Rect) -> int:
    value, weight = node.meta["val"], node.args[1].meta["val"]
    return out.area * value.shape[0] * weight.shape[0] * weight.shape[1] * weight.shape[2] * weight.shape[3]


def _regions(prefix: list, names: set[str], tiles: list[Rect]) -> dict[str, list[Rect | None]]:
    """Each prefix node's (and input's) region per tile of the cut (the last prefix node)."""
    region: dict[str, list[Rect | None]] = {n: [None] * len(tiles) for n in names}
    for t, tile in enumerate(tiles):
        region[prefix[-1].name][t] = tile
        for node in reversed(prefix):
            out = region[node.name][t]
            if out is None:
                continue
            for arg in _tensor_args(node, names):
                wanted = _clip(needs(node, out), _full_shape(arg)) if kind_of(node) in SPATIAL and arg is node.args[0] \
                    else out
                region[arg.name][t] = wanted.union(region[arg.name][t])
    return region


def plan(fx_graph, user_inputs: set[str], tiling: Tiling, checked: bool = False) -> TilePlan:
    """Each prefix node's region in each patch (module docstring), and the MACs: the prefix's
    convolutions on what the cut needs (one patch), and patch by patch. ``checked``: the cut is
    known to be one of :func:`cut_points`."""
    if tiling.k < 1:
        raise ValueError(f"tiling: k must be at least 1, got {tiling.k}")
    if not checked and tiling.cut not in cut_points(fx_graph, user_inputs):
        raise ValueError(f"tiling: {tiling.cut!r} cannot end a tiled prefix (see cut_points)")
    nodes = [n for n in fx_graph.nodes if n.op == "call_function"]
    prefix = nodes[:[n.name for n in nodes].index(tiling.cut) + 1]
    names = {n.name for n in prefix} | set(user_inputs)
    height, width = _full_shape(prefix[-1])
    tiles = [Rect(r0, r1, c0, c1) for r0, r1 in _grid(height, tiling.k) for c0, c1 in _grid(width, tiling.k)]
    region = _regions(prefix, names, tiles)
    whole = _regions(prefix, names, [Rect(0, height, 0, width)])
    convolutions = [n for n in prefix if kind_of(n) == "convolution"]

    def macs(regions) -> int:
        return sum(_conv_macs(n, r) for n in convolutions for r in regions[n.name] if r is not None)

    full = {n.name: math.prod(_full_shape(n)) for n in prefix}
    full.update({name: math.prod(_full_shape(next(n for n in fx_graph.nodes if n.name == name)))
                 for name in user_inputs})
    return TilePlan(tiling, region, frozenset(user_inputs), macs(whole), macs(region), full)


def tiled_required(graph, tile_plan: TilePlan) -> int:
    """M_R of ``graph`` (the untiled import with the plan's fusion barrier: :func:`mark_joins`)
    with ``tile_plan`` applied, by arithmetic: an
    operator of the prefix reads and writes, in each patch, its tensors' regions; the rest
    reads and writes what it did (the cut's consumers read all its tiles, which are the cut)."""
    def node(tensor: str) -> str:  # a tensor's fx node: its name, or before ".i" for a tuple's element
        return tensor.split(".")[0]

    required = 0
    for op in graph.operators.values():
        operands = graph.operands(op.name)
        if op.name not in tile_plan.region:
            required = max(required, sum(graph.tensors[t].bytes for t in operands))
            continue
        for t in range(len(tile_plan.region[op.name])):
            if tile_plan.region[op.name][t] is None:
                continue
            required = max(required, sum(
                graph.tensors[n].bytes * tile_plan.region[node(n)][t].area // tile_plan.full[node(n)]
                if node(n) in tile_plan.region else graph.tensors[n].bytes for n in operands))
    return required


def model_macs(fx_graph) -> int:
    """Multiply-accumulates of every convolution and matrix product of the graph, untiled."""
    total = 0
    for node in fx_graph.nodes:
        kind = kind_of(node) if node.op == "call_function" else ""
        if kind == "convolution" and _spatial(node.meta["val"]) is not None:
            shape = _full_shape(node)
            total += _conv_macs(node, Rect(0, shape[0], 0, shape[1]))
        elif kind in ("addmm", "mm", "bmm"):
            a, b = node.args[-2].meta["val"], node.args[-1].meta["val"]
            total += a.numel() * b.shape[-1]
    return total


def _size(value, rect: Rect, bytes_per_element: int) -> int:
    return max(1, value.numel() // (value.shape[2] * value.shape[3]) * rect.area * bytes_per_element)


def tile_ops(ops: list, tensors: dict, origin: dict[str, tuple[str, int | None]], tile_plan: TilePlan,
             values: dict, bytes_per_element: int) -> list:
    """The importer's operators with the prefix replaced by one copy per patch (module
    docstring), patch after patch; ``tensors`` is updated in place. ``origin`` maps a tensor to
    its fx node and output index, ``values`` an fx node to its example value."""
    region, count = tile_plan.region, len(next(iter(tile_plan.region.values())))

    def node_of(name: str) -> str | None:
        return origin.get(name, (None, None))[0]

    def copy(name: str, t: int) -> str:
        node, index = origin[name]
        value = values[node] if index is None else values[node][index]
        tiled = f"{name}@{t}"
        if tiled not in tensors:
            producer = None if tensors[name].producer is None else f"{tensors[name].producer}@{t}"
            tensors[tiled] = Tensor(tiled, _size(value, region[node][t], bytes_per_element), producer)
        return tiled

    inside = [op for op in ops if op.name in region]
    patches = []
    for t in range(count):
        for op in inside:
            if region[op.name][t] is None:
                continue
            clone = type(op)(f"{op.name}@{t}", op.kind, [copy(n, t) if node_of(n) in region else n for n in op.inputs],
                             [copy(n, t) for n in op.outputs], list(op.weights), op.joins)
            patches.append(clone)
    rest = []
    for op in ops:
        if op.name in region:
            continue
        inputs = []
        for name in op.inputs:  # the cut's tensor: all its tiles
            inputs += [f"{name}@{t}" for t in range(count) if f"{name}@{t}" in tensors] \
                if node_of(name) in region else [name]
        op.joins = op.joins or inputs != op.inputs
        op.inputs = inputs
        rest.append(op)
    for name in [n for n in tensors if node_of(n) in region]:
        del tensors[name]
    return patches + rest


def mark_joins(ops: list, tensors: dict, origin: dict[str, tuple[str, int | None]], prefix: set[str]) -> list:
    """The untiled operators with the fusion barrier a tiling of ``prefix`` puts at its cut
    (what reads the cut is not fused into its producer): the graph whose operators are, patch
    by patch, the tiled graph's, for :func:`tiled_required`."""
    for op in ops:
        if op.name not in prefix and any(origin.get(n, (None,))[0] in prefix for n in op.inputs):
            op.joins = True
    return ops


def _sliced(value: torch.Tensor, have: Rect, want: Rect) -> torch.Tensor:
    return value[..., want.r0 - have.r0:want.r1 - have.r0, want.c0 - have.c0:want.c1 - have.c0]


@torch.no_grad()
def run_tiled(program, tile_plan: TilePlan, example: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The cut tensor computed patch by patch (each patch from its regions only, the operators'
    own padding applied where a region meets the border) and computed whole: the numerical
    check of a plan on the model itself."""
    constants = {**program.state_dict, **program.constants}
    base = {spec.arg.name: example if spec.kind.name == "USER_INPUT" else constants[spec.target]
            for spec in program.graph_signature.input_specs if hasattr(spec.arg, "name")}
    nodes = {n.name: n for n in program.graph.nodes}
    position = {name: i for i, name in enumerate(nodes)}
    prefix = sorted((nodes[name] for name in tile_plan.region if name in nodes and nodes[name].op == "call_function"),
                    key=lambda n: position[n.name])

    def call(node, env):
        args = torch.fx.node.map_arg(node.args, lambda a: env[a.name])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda a: env[a.name])
        return node.target(*args, **kwargs)

    whole = dict(base)
    for node in prefix:
        whole[node.name] = call(node, whole)
    cut = tile_plan.tiling.cut
    out = torch.empty_like(whole[cut])
    for t in range(len(tile_plan.region[cut])):
        env, have = dict(base), {}
        for name in tile_plan.user_inputs:
            rect = tile_plan.region[name][t]
            if rect is not None:
                env[name], have[name] = _sliced(base[name], Rect(0, 0, 0, 0), rect), rect
        for node in prefix:
            rect = tile_plan.region[node.name][t]
            if rect is None:
                continue
            env[node.name], have[node.name] = _patch(node, rect, env, have), rect
        rect = tile_plan.region[cut][t]
        out[..., rect.r0:rect.r1, rect.c0:rect.c1] = env[cut]
    return out, whole[cut]


def _patch(node, rect: Rect, env: dict, have: dict):
    """One prefix node's value on ``rect``, from its inputs' values on their regions."""
    kind = kind_of(node)
    if kind == "getitem":
        return env[node.args[0].name][node.args[1]]
    if kind not in SPATIAL:
        def value(arg):  # an input on this patch's rows and columns; a weight as it is
            return _sliced(env[arg.name], have[arg.name], rect) if arg.name in have else env[arg.name]

        return node.target(*torch.fx.node.map_arg(node.args, value), **torch.fx.node.map_arg(node.kwargs, value))
    source, wanted = node.args[0].name, needs(node, rect)
    inside = _clip(wanted, _full_shape(node.args[0]))
    value = _sliced(env[source], have[source], inside)
    pads = (inside.c0 - wanted.c0, wanted.c1 - inside.c1, inside.r0 - wanted.r0, wanted.r1 - inside.r1)
    value = F.pad(value, pads, value=float("-inf") if kind.startswith("max") else 0.0)
    args = list(torch.fx.node.map_arg(node.args, lambda a: env[a.name]))  # env holds the weights too
    if kind == "convolution":
        args[0], args[4] = value, [0, 0]
        return node.target(*args)
    kernel, stride, _, _ = _window(node)
    return node.target(value, list(kernel), list(stride), [0, 0], *args[4:])


def _full_shape(node) -> tuple[int, int]:
    value = node.meta["val"]
    return _spatial(value[0] if isinstance(value, (tuple, list)) else value)
