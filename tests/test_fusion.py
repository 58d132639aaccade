"""The graph the model runs (issue 24): activations fused whole, not after decomposition;
attention's softmax one operator; q/k/v read as parts; mask bookkeeping on constants folded.
One hand-written module per pattern."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from designer.mapping import MappingProblem, solve
from designer.mapping.strategies.baselines import required_bytes
from designer.mapping.sources.importer import from_torch, training_graph
from tests.models.torchvision_like import SwinBlock, tiny_vit

ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid,
               "mish": nn.Mish}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_an_activation_joins_its_conv_as_one_operator(name):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), ACTIVATIONS[name]()).eval()
    graph = from_torch(model, torch.zeros(1, 3, 8, 8))
    (op,) = graph.operators.values()  # conv + BN + the activation, decomposed into none of sigmoid/mul/clamp
    assert graph.tensors[op.outputs[0]].bytes == 8 * 8 * 8
    assert required_bytes(graph) == 3 * 8 * 8 + 8 * 8 * 8
    unfused = from_torch(model, torch.zeros(1, 3, 8, 8), fuse=False)
    assert [o.split("_")[0] for o in unfused.operators][-1] in (name, "gelu")  # still whole, just not joined


@pytest.mark.parametrize("name", ["silu", "hardswish", "mish"])
def test_a_training_graph_keeps_the_activation_whole_in_its_forward(name):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), ACTIVATIONS[name](), nn.Conv2d(4, 4, 3))
    graph = training_graph(model, torch.zeros(1, 3, 8, 8))
    forward = [op for op in graph.operators if "backward" not in op and not op.startswith(("mm", "sum"))]
    assert not any(op.startswith(("sigmoid", "clamp", "softplus")) for op in forward[:3]), forward


def attention(heads: int = 2, tokens: int = 6, width: int = 8) -> tuple[nn.Module, torch.Tensor]:
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(width, heads, batch_first=True)

        def forward(self, x):
            return self.attention(x, x, x, need_weights=False)[0]

    return Attention().eval(), torch.zeros(1, tokens, width)


def test_safe_softmax_is_one_operator_without_its_guard():
    model, x = attention()
    graph = from_torch(model, x)
    kinds = [op.split("_")[0] if not op.startswith("_") else op.rstrip("_0123456789") for op in graph.operators]
    assert kinds.count("_safe_softmax") == 1
    assert not {"where", "eq", "any", "logical", "full"} & set(kinds), kinds
    scores = 2 * 6 * 6  # heads x tokens x tokens
    assert sum(t.bytes == scores for t in graph.tensors.values()) == 2  # the scores and their softmax, nothing else
    train = training_graph(model.train(), x)
    assert sum(op.startswith("_safe_softmax") for op in train.operators) == 1


def test_q_k_and_v_are_parts_of_the_in_projection_sized_as_read():
    model, x = attention(tokens=6, width=8)
    graph = from_torch(model, x)
    projection = next(op for op in graph.operators.values() if len(op.outputs) == 3)
    assert [graph.tensors[t].bytes for t in projection.outputs] == [6 * 8] * 3  # not 3 x 48 each
    readers = {t: graph.consumers[t] for t in projection.outputs}
    assert all(len(c) == 1 for c in readers.values()) and len({c[0] for c in readers.values()}) >= 2
    result = solve(MappingProblem(graph, "M_R", time_limit=5))
    assert result.replay.valid, result.replay.errors


class Slices(nn.Module):
    """A linear layer's output read as slices: ``overlap`` makes them overlap, ``whole`` also
    reads it whole; either way the output stays one tensor."""

    def __init__(self, overlap: bool, whole: bool):
        super().__init__()
        self.linear, self.overlap, self.whole = nn.Linear(8, 12), overlap, whole

    def forward(self, x):
        y = self.linear(x)
        a, b = y[:, :6], y[:, (4 if self.overlap else 6):]
        out = torch.relu(a).sum(1) + torch.relu(b).sum(1)
        return out + y.sum(1) if self.whole else out


@pytest.mark.parametrize("overlap, whole, parts", [(False, False, 2), (True, False, 1), (False, True, 1)])
def test_slices_split_a_tensor_only_when_disjoint_and_never_read_whole(overlap, whole, parts):
    graph = from_torch(Slices(overlap, whole).eval(), torch.zeros(4, 8), fuse=False)
    linear = next(op for op in graph.operators.values() if op.name.startswith(("addmm", "linear")))
    assert len(linear.outputs) == parts
    sizes = sorted(graph.tensors[t].bytes for t in linear.outputs)
    assert sizes == ([4 * 6, 4 * 6] if parts == 2 else [4 * 12])


def test_the_shift_masks_are_folded_away():
    torch.manual_seed(0)
    plain, shifted = SwinBlock(16, 2, 4, 0).eval(), SwinBlock(16, 2, 4, 2).eval()
    x = torch.zeros(1, 8, 8, 16)
    a, b = from_torch(plain, x), from_torch(shifted, x)
    # the shifted block adds its two rolls; the mask is a constant (no operator builds it) that
    # its add reads beside the scores, fused into the score matmul
    assert len(b.operators) - len(a.operators) == 2, sorted(set(b.operators) - set(a.operators))
    assert sum(op.startswith("roll") for op in b.operators) == 2
    for graph in (a, b):
        assert all(any(graph.tensors[t].producer is not None or t == "x" for t in op.inputs)
                   for op in graph.operators.values())  # every operator reads an activation


def test_a_tiny_vit_imports_with_parts_and_maps_validly_in_both_objectives():
    graph = from_torch(tiny_vit().eval(), torch.zeros(1, 3, 32, 32), include_weights=True)
    assert sum(len(op.outputs) == 3 for op in graph.operators.values()) == 2  # one in-projection per layer
    for objective in ("offchip", "dram"):
        result = solve(MappingProblem(graph, "M_H", objective=objective, time_limit=5))
        assert result.replay.valid, result.replay.errors
