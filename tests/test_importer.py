"""Importing the models users bring (written by hand, torchvision-style) through torch.export:
fused and unfused, tuple outputs (chunk, layer norm), attention's score matrix, weights, and
every import mapped and replayed byte by byte in the simulator."""

import json

import pytest
import torch

from designer.cli import main
from designer.mapping.sources.importer import from_torch
from designer.mapping.problem import MappingProblem, budgets
from designer.mapping.stages import solve
from designer.mapping.core.simulate import simulate
from tests.models.blocks import dense_block, mobilenet_v2_block, shuffle_unit, vit_block
from tests.models.cifar import CifarResNet

MODELS = {
    "resnet18": (lambda: CifarResNet(widths=(8, 16, 32, 64)), (1, 3, 16, 16)),
    "mobilenet-v2-block": (mobilenet_v2_block, (1, 16, 8, 8)),
    "densenet-block": (dense_block, (1, 16, 8, 8)),
    "shufflenet-unit": (shuffle_unit, (1, 16, 8, 8)),
    "vit-block": (vit_block, (1, 3, 16, 16)),
}


@pytest.fixture(scope="module")
def imported():
    graphs = {}
    for name, (factory, shape) in MODELS.items():
        torch.manual_seed(0)
        model = factory().eval()
        for fuse in (True, False):
            graphs[name, fuse] = from_torch(model, torch.randn(shape), fuse=fuse, name=name)
    return graphs


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_imports_fused_and_unfused_and_maps_validly(name, imported):
    fused, unfused = imported[name, True], imported[name, False]
    assert len(fused.operators) < len(unfused.operators)  # BN, activations and adds joined their producers
    assert all(len(op.outputs) >= 1 for op in fused.operators.values())
    for graph in (fused, unfused):
        limits = budgets(graph, time_limit=5)
        result = solve(MappingProblem(graph, limits.halfway, time_limit=5, budgets=limits))
        assert result.mapping is not None
        replay = simulate(graph, result.mapping.to_dict(graph, result.solve))
        assert replay.valid, replay.errors


def test_attention_scores_are_a_tensor_and_weights_are_not_activations(imported):
    graph = imported["vit-block", True]
    tokens, heads = (16 // 4) ** 2, 4
    assert any(t.bytes == heads * tokens * tokens for t in graph.tensors.values() if t.producer is not None)
    assert all(t.producer is not None or name == "x" for name, t in graph.tensors.items())  # weights off
    with_weights = from_torch(vit_block().eval(), torch.randn(1, 3, 16, 16), include_weights=True)
    assert "attention.in_proj_weight" in with_weights.tensors
    assert with_weights.tensors["attention.in_proj_weight"].producer is None


def test_chunk_views_their_input_instead_of_creating_tensors(imported):
    graph = imported["shufflenet-unit", False]
    x = graph.tensors["x"]
    readers = [op for op in graph.operators.values() if "x" in op.inputs]
    assert x.bytes == 16 * 8 * 8 and readers  # the chunks are views of x, read where they are used


def test_cli_maps_a_user_model_and_an_exported_program(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["map", "--model", "tests/models/blocks.py:mobilenet_v2_block", "--input-shape", "1,16,8,8",
              "--time-limit", "5", "--save-graph", str(tmp_path / "g.json"), "--json"])
    assert exit_info.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] and {"scratchpad_bytes", "offchip_bytes", "budgets", "tensors", "operators", "steps"} <= set(data)
    saved = json.loads((tmp_path / "g.json").read_text())
    assert set(saved["operators"]) == set(data["operators"])
    program = torch.export.export(shuffle_unit().eval(), (torch.randn(1, 16, 8, 8),))
    torch.export.save(program, tmp_path / "unit.pt2")
    with pytest.raises(SystemExit) as exit_info:
        main(["map", str(tmp_path / "unit.pt2"), "--trust", "--time-limit", "5", "--json"])
    assert exit_info.value.code == 0 and json.loads(capsys.readouterr().out)["valid"]


@pytest.mark.parametrize("strategy", ["cpsat", "divide"])
def test_the_map_command_keeps_to_its_time_limit(strategy, tmp_path, capsys):
    """A 10-cell network whose solve would run past 6 s: the whole command, budgets and
    bound included, ends within the limit plus 10% (plus the graph's generation, outside it)."""
    import time

    from designer.mapping.sources.generators import cell_network
    path = tmp_path / "cells.json"
    path.write_text(json.dumps(cell_network(cells=10).to_dict()))
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        main(["map", str(path), "--scratchpad", "M_R", "--strategy", strategy, "--time-limit", "6", "--json"])
    seconds = time.perf_counter() - start
    assert exit_info.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["valid"]
    # generous: the limit is measured in benchmarks (alone and under load); here only that it binds at all
    assert seconds <= 2 * 6 + 5, f"{seconds:.1f} s"


def test_a_training_step_imports_forward_and_backward_and_maps_validly(tmp_path, capsys):
    from designer.mapping.sources.importer import training_graph
    from tests.models.cifar import small_residual
    graph = training_graph(small_residual(), torch.randn(1, 1, 8, 8), include_weights=True)
    kinds = {op.rstrip("_0123456789") for op in graph.operators}
    assert {"convolution", "convolution_backward", "native_batch_norm_backward", "threshold_backward"} <= kinds
    assert "conv1.weight" in graph.tensors and graph.tensors["conv1.weight"].producer is None
    limits = budgets(graph, time_limit=5)
    result = solve(MappingProblem(graph, limits.halfway, time_limit=5, budgets=limits))
    assert result.mapping is not None and simulate(graph, result.mapping.to_dict(graph, result.solve)).valid
    with pytest.raises(SystemExit) as exit_info:
        main(["map", "--model", "tests/models/cifar.py:small_residual", "--input-shape", "1,1,8,8", "--training",
              "--time-limit", "5", "--json"])
    assert exit_info.value.code == 0 and json.loads(capsys.readouterr().out)["valid"]


def test_the_training_step_of_attention_holds_its_score_matrix():
    from designer.mapping.sources.importer import training_graph
    graph = training_graph(vit_block(), torch.zeros(1, 3, 16, 16))
    tokens, heads = (16 // 4) ** 2, 4
    assert any(t.bytes == heads * tokens * tokens for t in graph.tensors.values() if t.producer is not None)
    assert any(op.startswith("_softmax") or op.startswith("_safe_softmax") for op in graph.operators)
