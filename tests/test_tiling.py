"""Patch-based tiling (issue 25): halo arithmetic against brute force, the tiled computation
against the untiled model's output, the tiled graphs' M_R by arithmetic against their import,
every tiled mapping replayed, and a traffic curve that never rises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from designer.mapping import MappingProblem, solve
from designer.mapping.strategies.baselines import required_bytes
from designer.mapping.sources.importer import export, tiled
from designer.mapping.tiling.search import candidates, choose, traffic_curve
from designer.mapping.tiling.plan import Rect, Tiling, cut_points, model_macs, plan, run_tiled


def users(program) -> set[str]:
    return {s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"}


def randomised(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1), module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5), module.bias.data.uniform_(-1, 1)
    return model.eval()


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
                                  nn.BatchNorm2d(channels),
                                  nn.ReLU6(), nn.Conv2d(channels, channels, 1))

    def forward(self, x):
        return x + self.body(x)


CHAINS = {
    "stride-padding": lambda: nn.Sequential(nn.Conv2d(3, 6, 3, 2, 1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 3)),
    "dilation-depthwise": lambda: nn.Sequential(nn.Conv2d(3, 6, 3, padding=2, dilation=2),
                                                nn.Conv2d(6, 6, 5, 1, 2, groups=6),
                                                nn.Hardswish()),
    "pooling": lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 4, 3),
                                     nn.AvgPool2d(2), nn.Conv2d(4, 4, 1)),
    "residual": lambda: nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), Residual(8), Residual(8), nn.Conv2d(8, 8, 3, 2, 1)),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_the_tiled_computation_equals_the_untiled_output(name):
    model, x = randomised(CHAINS[name]()), torch.randn(1, 3, 23, 29)
    program = export(model, x)
    cuts = cut_points(program.graph, users(program))
    assert cuts
    for cut in cuts[-3:]:
        for k in (2, 3):
            tiled_value, whole = run_tiled(program, plan(program.graph, users(program), Tiling(cut, k)), x)
            assert torch.equal(torch.isfinite(tiled_value), torch.isfinite(whole))
            assert (tiled_value - whole).abs().max() <= 1e-5, (cut, k)


@pytest.mark.parametrize("name", ["stride-padding", "dilation-depthwise"])
def test_halos_equal_the_input_pixels_each_patch_depends_on(name):
    """Brute force: perturb each input pixel and see which outputs of the patch move."""
    model, x = randomised(CHAINS[name]()).double(), torch.randn(1, 3, 11, 13, dtype=torch.float64)
    program = export(model, x)
    cut = cut_points(program.graph, users(program))[-1]
    tile_plan = plan(program.graph, users(program), Tiling(cut, 2))
    base = model(x)
    for t, tile in enumerate(tile_plan.region[cut]):
        rows, cols = [], []
        for r in range(x.shape[2]):
            for c in range(x.shape[3]):
                moved = x.clone()
                moved[..., r, c] += 1.0
                out = model(moved)[..., tile.r0:tile.r1, tile.c0:tile.c1]
                if not torch.allclose(out, base[..., tile.r0:tile.r1, tile.c0:tile.c1], atol=0, rtol=0):
                    rows.append(r), cols.append(c)
        (source,) = users(program)
        assert tile_plan.region[source][t] == Rect(min(rows), max(rows) + 1, min(cols), max(cols) + 1)


def test_recomputed_macs_are_counted_and_none_without_halos():
    model, x = randomised(CHAINS["stride-padding"]()), torch.randn(1, 3, 16, 16)
    program = export(model, x)
    cut = cut_points(program.graph, users(program))[-1]
    one = plan(program.graph, users(program), Tiling(cut, 1))
    four = plan(program.graph, users(program), Tiling(cut, 4))
    assert one.extra_macs == 0 and four.extra_macs > 0
    assert one.macs == four.macs <= model_macs(program.graph)
    pointwise = export(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()).eval(), x)
    assert plan(pointwise.graph, users(pointwise), Tiling("relu", 4)).extra_macs == 0  # 1 x 1: no halo


def test_the_footprint_by_arithmetic_equals_the_imported_graph_and_falls_with_patches():
    model, x = randomised(CHAINS["residual"]()), torch.randn(1, 3, 32, 32)
    found = candidates(export(model, x), ks=(2, 4))
    untiled = found[0]
    assert untiled.tiling is None
    for candidate in found:
        assert required_bytes(candidate.graph) == candidate.required, candidate.describe()
    assert min(c.required for c in found) < untiled.required


def test_every_tiled_mapping_replays_validly_below_the_untiled_m_r():
    model, x = randomised(CHAINS["residual"]()), torch.randn(1, 3, 32, 32)
    found = candidates(export(model, x), ks=(2, 4))
    below = found[0].required - 1
    choice = choose(found, below, time_limit=10)
    assert choice.candidate.tiling is not None and choice.candidate.required <= below
    assert choice.result.replay.valid, choice.result.replay.errors
    for candidate in found[1:4]:
        result = solve(MappingProblem(candidate.graph, "M_R", time_limit=3))
        assert result.replay.valid, result.replay.errors


def test_the_traffic_curve_never_rises():
    model, x = randomised(CHAINS["residual"]()), torch.randn(1, 3, 32, 32)
    found = candidates(export(model, x), ks=(2, 4))
    low = min(c.required for c in found)
    rows = traffic_curve(found, low, 2 * found[0].required, 5, time_limit=20)
    values = [r["objective"] for r in rows]
    assert all(a >= b for a, b in zip(values, values[1:])), values
    assert all(r["valid"] for r in rows) and rows[0]["tiling"] != "untiled"
    assert all(r["bound"] is None or r["bound"] <= r["objective"] for r in rows)


def test_a_tiled_graph_has_a_copy_of_the_prefix_per_patch():
    model, x = randomised(CHAINS["stride-padding"]()), torch.randn(1, 3, 16, 16)
    program = export(model, x)
    cut = cut_points(program.graph, users(program))[-1]
    graph, tile_plan = tiled(program, Tiling(cut, 2))
    assert sum(t.producer is None for t in graph.tensors.values()) == 4  # x read as four overlapping patches
    assert all("@" in op for op in graph.operators)
