"""Mixed-precision quantization: grids, GPTQ, the DP against brute force, BatchNorm folding, the
fake-quantized module against ONNX Runtime's run of the file, budgets recounted on the file,
quantization-aware training, and bad input refused before any measurement."""

import itertools
import json
import math
import random

import pytest
import torch
from torch import nn

from designer.pruning.hessian import layer_hessians
from designer.pruning.obs import relative_error
from designer.quantization import GPTQ, AverageBits, BOPs, ModelSize, Nearest, allocate_bits, quantize_model
from designer.quantization.budgets import layer_bytes
from designer.quantization.curves import LayerOptions
from designer.quantization.fold import fold_batchnorm
from designer.quantization.grid import activation_qparams, fake_weight, levels, nearest, weight_scales
from tests.conftest import train_digits_checkpoint
from tests.models.cifar import CifarResNet
from tests.models.vit import ViT

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def small_resnet(seed: int = 0) -> nn.Module:
    """A CIFAR-style ResNet-18 layout at widths 8-32, BatchNorm statistics drawn away from identity
    (an untrained network's are 0 and 1, which would hide a wrong fold)."""
    torch.manual_seed(seed)
    model = CifarResNet(widths=(8, 16, 16, 32), num_classes=10, in_channels=3).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)
    return model


def test_the_grids_are_as_documented():
    weight = torch.randn(6, 5)
    for bits in (8, 6, 4, 3, 2):
        scales = weight_scales(weight, bits)
        rounded = nearest(weight, scales, bits)
        codes = rounded / scales.unsqueeze(1)
        assert torch.allclose(codes, codes.round(), atol=1e-4) and codes.round().abs().max() <= levels(bits)
        assert torch.allclose(fake_weight(weight, scales, bits), rounded, atol=1e-6)
    scale, zero = activation_qparams(0.3, 2.0)  # a range without 0 is widened to hold it: zero is exact
    assert zero == 0 and scale == pytest.approx(2.0 / 255)
    scale, zero = activation_qparams(-1.0, 1.0)
    assert abs(-1.0 / scale + zero) < 1 and abs(zero * scale - 1.0) < scale  # 0 maps to an integer code


def test_folding_batchnorm_keeps_the_function_and_the_class():
    model = small_resnet()
    x = torch.randn(4, 3, 16, 16)
    before = model(x)
    folded = fold_batchnorm(model)
    assert len(folded) == sum(isinstance(m, nn.Identity) for m in model.modules()) == 20
    assert type(model) is CifarResNet and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(model(x), before, atol=1e-5)


@pytest.mark.parametrize("bits", [4, 3, 2])
def test_gptq_is_never_worse_than_nearest_on_a_layers_output(bits):
    torch.manual_seed(bits)
    layer = nn.Conv2d(8, 12, 3, padding=1)
    mixing = torch.randn(8, 8)  # correlated input channels: where reconstruction has something to gain
    x = torch.einsum("bchw,cd->bdhw", torch.randn(16, 8, 10, 10), mixing)
    h = layer_hessians(layer, x, [("", layer)])[""]
    weight = layer.weight.detach()
    scales = weight_scales(weight, bits)
    gptq, plain = GPTQ().round(weight, scales, bits, hessian=h), Nearest().round(weight, scales, bits)
    per_row = [relative_error(weight[i:i + 1], gptq[i:i + 1], h) <= relative_error(weight[i:i + 1], plain[i:i + 1], h)
               + 1e-12 for i in range(len(weight))]
    assert all(per_row)
    assert relative_error(weight, gptq, h) < 0.9 * relative_error(weight, plain, h)
    codes = gptq / scales.reshape(-1, 1, 1, 1)
    assert torch.allclose(codes, codes.round(), atol=1e-6) and codes.round().abs().max() <= levels(bits)


def _table(rng: random.Random, layers: int = 3) -> list[LayerOptions]:
    table = []
    for i in range(layers):
        bits = [8, 6, 4, 3, 2]
        # distortion falls with bits (as measured curves do), at random rates
        table.append(LayerOptions(f"l{i}", rng.randint(10, 400), rng.randint(1, 8), rng.randint(100, 9000), bits,
                                  [0.0] * 5, sorted(rng.random() for _ in bits)))
    return table


@pytest.mark.parametrize("seed", range(6))
def test_the_dp_is_brute_force_on_small_tables(seed):
    rng = random.Random(seed)
    table = _table(rng)
    for budget in (AverageBits(rng.uniform(2.5, 6.5)), BOPs(rng.uniform(0.3, 0.8) * sum(8 * 8 * l.macs for l in table)),
                   ModelSize(rng.uniform(0.6, 1.0) * sum(layer_bytes(l.weights, l.channels, 8) for l in table))):
        limit = budget.limit(table)
        best = min((sum(l.distortion[i] for l, i in zip(table, picks)), picks)
                   for picks in itertools.product(range(5), repeat=len(table))
                   if sum(budget.cost(l, l.bits[i], 0.0) for l, i in zip(table, picks)) <= limit)
        allocation = allocate_bits(table, budget, bins=None)  # the exact integer state
        assert allocation.distortion == pytest.approx(best[0])
        assert allocation.cost <= limit and allocation.solve.status == "optimal"


def _codes(model_proto, name: str):
    """A quantized layer's codes as the file stores them (INT4 unpacked by onnx)."""
    from onnx import numpy_helper
    tensor = next(t for t in model_proto.graph.initializer if t.name == f"{name}.weight_quantized")
    return numpy_helper.to_array(tensor).astype(int)


@pytest.mark.parametrize("make", [small_resnet, lambda: ViT(image=16, in_channels=3, num_classes=10, depth=2)],
                         ids=["resnet", "vit"])
def test_onnx_runtime_runs_the_file_as_the_fake_quantized_module_computes(make, tmp_path):
    """Tolerance: 4 steps of the last layer's output grid (the integer kernels requantize with a
    float multiplier, so a code can land one step off and the next layer sees it)."""
    from designer.quantization.onnx_file import export_onnx, payload_bytes, run_onnx, session
    torch.manual_seed(1)
    model = make().eval()
    x = torch.randn(48, 3, 16, 16)
    quantized = quantize_model(model, x, budget=AverageBits(4.5), rounding=GPTQ())
    path = tmp_path / "model.onnx"
    export_onnx(quantized.model, quantized.plan, x[:1], path)
    with torch.no_grad():
        expected = quantized.model(x)
    got = run_onnx(session(path), x)
    step = list(quantized.plan.values())[-1].output[0]
    assert (got - expected).abs().max() <= 4 * step
    report = quantized.report
    assert payload_bytes(path, quantized.plan) == report.size_bytes  # the size, recounted on the file
    assert report.average_bits <= 4.5 and len({layer["bits"] for layer in report.layers}) > 1
    proto = onnx.load(str(path))
    for name, quant in quantized.plan.items():  # every layer's codes on its own grid
        assert abs(_codes(proto, name)).max() <= levels(quant.bits)


def test_a_size_budget_holds_on_the_written_file(tmp_path):
    from designer.quantization.onnx_file import export_onnx, payload_bytes
    model = small_resnet(2)
    x = torch.randn(32, 3, 16, 16)
    eight = sum(layer_bytes(m.weight.numel(), m.weight.shape[0], 8) for m in model.modules()
                if isinstance(m, (nn.Conv2d, nn.Linear)))
    budget = math.floor(0.6 * eight)
    quantized = quantize_model(model, x, budget=ModelSize(budget), rounding=Nearest())
    export_onnx(quantized.model, quantized.plan, x[:1], tmp_path / "m.onnx")
    assert payload_bytes(tmp_path / "m.onnx", quantized.plan) == quantized.report.size_bytes <= budget


def test_joint_sparsity_options_prune_what_the_dp_chose():
    model = small_resnet(3)
    x = torch.randn(32, 3, 16, 16)
    quantized = quantize_model(model, x, budget=AverageBits(3.0), bits=(8, 4), sparsities=(0.5,), rounding=GPTQ())
    chosen = {row["name"]: row for row in quantized.report.layers}
    assert any(row["sparsity"] == 0.5 for row in chosen.values())
    for name, row in chosen.items():
        zeros = float((quantized.model.get_submodule(name).weight == 0).float().mean())
        assert zeros >= row["sparsity"] - 1e-6
    assert quantized.report.average_bits <= 3.0


def test_the_fake_quantized_module_trains_and_stays_on_its_grid():
    model = small_resnet(4)
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 10, (32,))
    quantized = quantize_model(model, x, bits=(4,), rounding=Nearest())
    model.train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    first = model.get_submodule("layers.0.0.conv1")
    before = first.parametrizations.weight.original.detach().clone()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert first.parametrizations.weight.original.grad.abs().sum() > 0  # straight through the rounding
    optimiser.step()
    assert not torch.equal(first.parametrizations.weight.original, before)  # it learns
    after = first.weight.detach()
    codes = after / quantized.plan["layers.0.0.conv1"].scales.reshape(-1, 1, 1, 1)
    assert torch.allclose(codes, codes.round(), atol=1e-4) and codes.round().abs().max() <= levels(4)


@pytest.mark.parametrize("kwargs, message", [
    ({"bits": (1,)}, "bits: a weight bit-width is one of 8, 6, 4, 3, 2, got 1"),
    ({"bits": (9,)}, "got 9"),
    ({"bits": (8, 4)}, "give a budget"),
    ({"budget": AverageBits(1.5)}, "--bits-avg: 1.5 is below the smallest average the options reach, 2.0000"),
    ({"budget": BOPs(10)}, "--bops: 10 BOPs is below the smallest the options reach"),
])
def test_bad_input_is_refused_before_any_measurement(kwargs, message, monkeypatch):
    import designer.quantization.quantize as quantize
    monkeypatch.setattr(quantize, "option_curves", lambda *a, **k: pytest.fail("measured before refusing"))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        quantize_model(small_resnet(), torch.randn(4, 3, 16, 16), **kwargs)


def test_a_model_without_a_quantizable_layer_is_refused():
    with pytest.raises(ValueError, match="no Conv2d or Linear layer to quantize"):
        quantize_model(nn.Sequential(nn.Flatten(), nn.ReLU()), torch.randn(4, 3, 4, 4), bits=(8,))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return train_digits_checkpoint(tmp_path_factory)


def test_quantize_command_writes_a_file_onnx_runtime_runs(checkpoint, tmp_path):
    from typer.testing import CliRunner

    from designer.cli import app
    from designer.schemas import QuantizeReport
    out = tmp_path / "q.onnx"
    result = CliRunner().invoke(app, ["quantize", str(checkpoint), "--bits-avg", "5", "--calibration", "64",
                                      "--qat-epochs", "1", "--out", str(out), "--json", "--threads", "1"])
    assert result.exit_code == 0, result.output
    summary = QuantizeReport.model_validate(json.loads(result.stdout))
    assert out.is_file() and summary.onnx_bytes == out.stat().st_size
    assert summary.average_bits <= 5 and summary.budget["option"] == "--bits-avg"
    # the file is the module: ONNX Runtime's accuracy is the torch module's (after QAT, what was exported)
    assert abs(summary.accuracy_onnx - summary.accuracy_qat) <= 0.01
    again = CliRunner().invoke(app, ["quantize", str(checkpoint), "--bits", "8", "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output  # an output that exists is refused


@pytest.mark.parametrize("args, message", [
    (["--bits", "1,8", "--bits-avg", "4"], "--bits: a weight bit-width is one of 8, 6, 4, 3, 2, got 1"),
    (["--bits", "8,9"], "got 9"),
    (["--bits-avg", "1.5"], "--bits-avg: 1.5 is below the fewest bits offered, 2 (--bits)"),
    (["--bits-avg", "4", "--size", "10kB"], "give one budget, not --bits-avg and --size"),
    (["--size", "1kB"], "--size: 1,000 bytes is below the smallest the options reach"),
    (["--bits", "8", "--out", "model.pt"], "--out: the quantized network is written as ONNX"),
    (["--bits", "4,8"], "give a budget"),
])
def test_quantize_refuses_bad_input_in_one_line(checkpoint, tmp_path, args, message, monkeypatch):
    from typer.testing import CliRunner

    import designer.quantization.quantize as quantize
    from designer.cli import app
    monkeypatch.setattr(quantize, "option_curves", lambda *a, **k: pytest.fail("measured before refusing"))
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "q.onnx")]
    result = CliRunner().invoke(app, ["quantize", str(checkpoint), *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_map_counts_the_deployed_bytes_of_a_quantized_file(tmp_path):
    """An int8 tensor (a QuantizeLinear's codes) is 1 byte per element, a float one 4: M_R of the
    quantized file against the same network's float file, and every tensor recounted from the
    element counts ONNX Runtime gives."""
    import copy

    from designer.mapping.strategies.baselines import required_bytes
    from designer.mapping.sources import load_graph
    from designer.quantization.onnx_file import export_onnx
    model = small_resnet(5)
    x = torch.randn(16, 3, 16, 16)
    float_model = copy.deepcopy(model)
    fold_batchnorm(float_model)
    quantized = quantize_model(model, x, bits=(8,), rounding=Nearest())
    export_onnx(quantized.model, quantized.plan, x[:1], tmp_path / "int8.onnx")
    export_onnx(float_model, None, x[:1], tmp_path / "float.onnx")
    deployed, plain = load_graph(tmp_path / "int8.onnx"), load_graph(tmp_path / "float.onnx")
    assert len(deployed.operators) == len(plain.operators)  # the Q/DQ pairs folded away
    codes = [t for t in deployed.tensors.values() if t.name.endswith("_quantized")]
    assert len(codes) >= 2 * len(quantized.plan) - 1
    with torch.no_grad():  # the first conv's output: 8 channels at 16x16, as codes (1 B) and as floats (4 B)
        elements = quantized.model.conv1(x[:1]).numel()
    assert deployed.tensors["conv1.output_quantized"].bytes == elements
    assert required_bytes(deployed) < required_bytes(plain)
    assert required_bytes(deployed) == max(deployed.operand_bytes(op) for op in deployed.operators)
    # every conv reads and writes codes: 4x fewer bytes than the float graph's conv at the same place
    convs = [op for op in deployed.operators.values() if "conv" in op.name]
    float_convs = [op for op in plain.operators.values() if "conv" in op.name]
    for op, twin in zip(convs, float_convs):
        assert 4 * deployed.operand_bytes(op.name) == plain.operand_bytes(twin.name)
