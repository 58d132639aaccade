"""Synthetic DNN graphs for the mapping benchmark: NAS cell networks and transformer encoders.

Both are built as tensor graphs directly (one tensor per operator output, bytes = elements x
``bytes_per_element``), so their size is exact and nothing needs tracing.

* :func:`cell_network`: a DARTS / NASNet-style network. A stem, then ``cells`` cells; each
  takes the outputs of the two previous cells, pre-processes both (1x1 conv), and builds
  ``nodes`` intermediate nodes, each the sum of two operations on earlier states of the
  cell, chosen at random (seeded) among separable conv, dilated conv, pooling and identity;
  the cell's output concatenates its nodes. Cells at one and two thirds of the depth reduce
  (stride 2, channels doubled). These graphs branch heavily and keep many tensors live at
  once, which is what makes the cell networks hard to map (COSMA's NAS experiments).
* :func:`transformer_encoder`: pre-norm encoder layers: layer norm, Q/K/V projections,
  attention scores (heads x tokens x tokens), softmax, context, output projection, residual
  add, layer norm, two feed-forward matmuls around a GELU, residual add.
"""

from __future__ import annotations

import random

from designer.mapping.core.graph import Operator, Tensor, TensorGraph

CELL_OPERATIONS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "max_pool_3x3", "avg_pool_3x3", "identity")


class _Builder:
    def __init__(self, bytes_per_element: int):
        self.operators: list[Operator] = []
        self.tensors: list[Tensor] = []
        self.bytes_per_element = bytes_per_element

    def input(self, name: str, elements: int) -> str:
        self.tensors.append(Tensor(name, elements * self.bytes_per_element, None))
        return name

    def op(self, name: str, inputs: list[str], elements: int) -> str:
        self.operators.append(Operator(name, list(inputs), [name]))
        self.tensors.append(Tensor(name, elements * self.bytes_per_element, name))
        return name

    def graph(self, name: str) -> TensorGraph:
        return TensorGraph(self.operators, self.tensors, name)


def cell_network(cells: int = 8, nodes: int = 4, channels: int = 16, resolution: int = 32, classes: int = 10,
                 seed: int = 0, bytes_per_element: int = 1) -> TensorGraph:
    if cells < 1 or nodes < 1 or channels < 1 or resolution < 4:
        raise ValueError("cell_network: cells, nodes and channels must be positive and resolution at least 4")
    rng = random.Random(seed)
    g = _Builder(bytes_per_element)
    image = g.input("image", 3 * resolution * resolution)
    c, r = channels, resolution
    stem = g.op("stem", [image], 3 * c * r * r)
    previous, last = stem, stem
    reductions = {cells // 3, 2 * cells // 3} if cells >= 3 else set()
    for k in range(cells):
        reduce = k in reductions
        if reduce:
            c, r = 2 * c, max(1, r // 2)
        size = c * r * r
        states = [g.op(f"cell{k}/pre0", [previous], size), g.op(f"cell{k}/pre1", [last], size)]
        for i in range(nodes):
            branches = []
            for j in range(2):
                source = rng.randrange(len(states))
                operation = rng.choice(CELL_OPERATIONS)
                if operation == "identity":  # the pre-processed states already have the cell's shape
                    branches.append(states[source])
                else:
                    branches.append(g.op(f"cell{k}/node{i}/{j}_{operation}", [states[source]], size))
            states.append(g.op(f"cell{k}/node{i}", branches, size))
        previous, last = last, g.op(f"cell{k}/concat", states[2:], nodes * size)
    pooled = g.op("global_pool", [last], nodes * c)
    g.op("classifier", [pooled], classes)
    return g.graph(f"cells{cells}x{nodes}-c{channels}-r{resolution}")


def transformer_encoder(layers: int = 4, tokens: int = 128, dim: int = 256, heads: int = 4, ffn_ratio: int = 4,
                        bytes_per_element: int = 1) -> TensorGraph:
    if min(layers, tokens, dim, heads, ffn_ratio) < 1 or dim % heads:
        raise ValueError("transformer_encoder: sizes must be positive and dim divisible by heads")
    g = _Builder(bytes_per_element)
    x = g.input("tokens", tokens * dim)
    hidden = tokens * dim
    for i in range(layers):
        p = f"layer{i}"
        normed = g.op(f"{p}/ln1", [x], hidden)
        q, k, v = (g.op(f"{p}/{w}", [normed], hidden) for w in "qkv")
        scores = g.op(f"{p}/scores", [q, k], heads * tokens * tokens)
        attention = g.op(f"{p}/softmax", [scores], heads * tokens * tokens)
        context = g.op(f"{p}/context", [attention, v], hidden)
        projected = g.op(f"{p}/out_proj", [context], hidden)
        x = g.op(f"{p}/residual1", [x, projected], hidden)
        normed = g.op(f"{p}/ln2", [x], hidden)
        up = g.op(f"{p}/ffn1", [normed], ffn_ratio * hidden)
        activated = g.op(f"{p}/gelu", [up], ffn_ratio * hidden)
        down = g.op(f"{p}/ffn2", [activated], hidden)
        x = g.op(f"{p}/residual2", [x, down], hidden)
    return g.graph(f"encoder{layers}-t{tokens}-d{dim}")
