"""Pruning the models users bring: a hand-written residual CNN with BN and a CIFAR-style
ResNet-18 (written by hand, as torchvision cannot be a dependency here), through the API and
the command line, with outputs plain torch loads."""

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from designer.cli import main
from designer.pruning import prune_channels, prune_model
from designer.pruning.curves import prunable_layers
from designer.pruning.groups import count_costs
from designer.train.data import load_dataset
from tests.models.cifar import CifarResNet, small_residual

MODEL = "tests/models/cifar.py:small_residual"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The small residual CNN, trained briefly on digits, saved as a plain state dict."""
    from designer.train.loop import TrainConfig, train
    torch.manual_seed(0)
    model = small_residual()
    train(model, load_dataset("digits").train, TrainConfig(epochs=3, seed=0))
    path = tmp_path_factory.mktemp("user") / "weights.pt"
    torch.save(model.state_dict(), path)
    return path


def run(args, capsys) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    return json.loads(captured.out)


def test_cli_weights_mode_on_a_user_model_loads_with_plain_torch(trained, tmp_path, capsys):
    out = tmp_path / "pruned.pt"
    summary = run(["prune", "--model", MODEL, "--weights", str(trained), "--input-shape", "1,1,8,8",
                   "--dataset", "digits", "--sparsity", "0.8", "--schedule", "one-shot", "--grid", "21",
                   "--finetune-epochs", "1", "--out", str(out), "--json"], capsys)
    data = torch.load(out, weights_only=True)
    fresh = small_residual()
    fresh.load_state_dict(data["state_dict"])  # plain torch, no mpdesign
    weights = [m.weight for _, m in prunable_layers(fresh)]
    kept = sum(int((w != 0).sum()) for w in weights)
    assert kept == summary["kept_weights"] <= summary["budget"]
    assert data["metadata"]["method"] == "rd" and data["metadata"]["accuracy_after"] == summary["accuracy_after"]
    assert summary["sparsity"] == pytest.approx(1 - kept / sum(w.numel() for w in weights))


def test_cli_channel_mode_on_a_user_model_gives_a_smaller_exported_program(trained, tmp_path, capsys):
    out = tmp_path / "small.pt2"
    summary = run(["prune", "--model", MODEL, "--weights", str(trained), "--input-shape", "1,1,8,8",
                   "--dataset", "digits", "--mode", "channels", "--keep-macs", "0.5", "--finetune-epochs", "1",
                   "--out", str(out), "--json"], capsys)
    assert summary["macs"] <= 0.5 * summary["macs_dense"] and summary["params"] < summary["params_dense"]
    program = torch.export.load(out)  # plain torch: no source file, no mpdesign
    x = torch.randn(1, 1, 8, 8)
    assert program.module()(x).shape == (1, 10)
    assert program.module()(torch.randn(5, 1, 8, 8)).shape == (5, 10)  # any batch (issue 38)
    from designer.cli import main
    with pytest.raises(SystemExit) as exit_info:  # and our own mapper reads it back
        main(["map", str(out), "--trust", "--scratchpad", "M_R", "--json"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    assert sum(v.numel() for v in program.state_dict.values()
               if v.dtype.is_floating_point) <= summary["params"] + 200  # + BN buffers


def test_the_api_takes_a_data_loader(trained):
    model = small_residual()
    model.load_state_dict(torch.load(trained, weights_only=True))
    splits = load_dataset("digits")
    loader = DataLoader(splits.train, batch_size=32)
    report = prune_model(model, loader, method="lamp", sparsity=0.5, schedule="one-shot")
    assert report.rounds[-1]["kept_weights"] <= report.rounds[-1]["budget"]
    result = prune_channels(model, torch.zeros(1, 1, 8, 8), loader, max_params=3000,
                            fractions=[0.25, 0.5, 0.75, 1.0])
    assert result.params <= 3000 and result.params == count_costs(result.model, torch.zeros(1, 1, 8, 8))[0]


def test_channel_mode_on_a_resnet18_prunes_residual_coupled_channels():
    """The ResNet-18 structure (BasicBlocks 2-2-2-2, projection shortcuts), narrow for speed."""
    torch.manual_seed(0)
    model = CifarResNet(widths=(16, 32, 64, 128)).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    params0, macs0 = count_costs(model, x)
    result = prune_channels(model, x[:1], TensorDataset(x, torch.zeros(32)), max_macs=0.5 * macs0,
                            fractions=[0.25, 0.5, 0.75, 1.0])
    params, macs = count_costs(result.model, x)
    assert (params, macs) == (result.params, result.macs) and macs <= 0.5 * macs0 and params < params0
    assert result.model(x).shape == model(x).shape == (32, 10)
    residual = [c for c in result.curves if "downsample" in c.root or c.root == "conv1"]
    assert len(residual) == 4  # the stem's stream and each stage's, coupled across its blocks
    assert any(result.kept[c.root] < c.channels for c in residual)  # residual-coupled channels pruned
    sizes = {name: m.weight.shape for name, m in result.model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert sizes["layers.3.1.conv2"][0] == sizes["layers.3.0.downsample.0"][0] == result.kept["layers.3.0.downsample.0"]


def test_a_channel_pruned_model_is_the_users_class_again_and_trains(trained, tmp_path, capsys):
    """Issue 26: `load_pruned(factory, path)` gives the pruned model's outputs, as the user's own
    class, which trains (`.train()`, one step) and evaluates (`.eval()`)."""
    from designer.pruning import load_pruned, save_pruned
    model = small_residual()
    model.load_state_dict(torch.load(trained, weights_only=True))
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(load_dataset("digits").train, batch_size=32)
    macs0 = count_costs(model, torch.zeros(1, 1, 8, 8))[1]
    result = prune_channels(model, torch.zeros(1, 1, 8, 8), loader, max_macs=0.5 * macs0)
    save_pruned(result.model, tmp_path / "small.pt")
    loaded = load_pruned(MODEL, tmp_path / "small.pt")
    assert type(loaded).__name__ == type(model).__name__  # the user's class (loaded from its file)
    assert torch.allclose(loaded.eval()(x), result.model.eval()(x), atol=1e-6)
    assert sum(p.numel() for p in loaded.parameters()) == result.params
    loaded.train()
    optimiser = torch.optim.SGD(loaded.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(loaded(x), torch.zeros(8, dtype=torch.long))
    loss.backward(), optimiser.step()
    assert loaded.eval()(x).shape == (8, 10)
    # the command line writes the same file for a .pt path (and an ExportedProgram only for .pt2)
    out = tmp_path / "cli.pt"
    summary = run(["prune", "--model", MODEL, "--weights", str(trained), "--input-shape", "1,1,8,8", "--dataset",
                   "digits", "--mode", "channels", "--keep-macs", "0.5", "--criterion", "obs", "--finetune-epochs", "0",
                   "--out", str(out), "--json"], capsys)
    assert summary["criterion"] == "obs" and summary["macs"] <= 0.5 * summary["macs_dense"]
    assert load_pruned(MODEL, out).eval()(x).shape == (8, 10)
    with pytest.raises(ValueError, match="not a pruned-model file"):
        load_pruned(MODEL, trained)


def test_the_prune_job_is_one_library_call(trained, tmp_path):
    """Issue 26: the orchestration lives in the library (designer.pruning.run); the CLI parses and prints."""
    from designer.pruning.run import PruneRequest, run_prune
    request = PruneRequest(model=MODEL, weights=trained, input_shape="1,1,8,8", dataset="digits", sparsity=0.5,
                           method="lamp", schedule="one-shot", finetune_epochs=0, out=tmp_path / "p.pt")
    summary = run_prune(request)
    assert summary["kept_weights"] <= summary["budget"] and (tmp_path / "p.pt").is_file()
    with pytest.raises(ValueError, match="--sparsity"):
        run_prune(PruneRequest(model=MODEL, input_shape="1,1,8,8", dataset="digits", sparsity=1.5))


def test_channel_pruning_shows_its_groups(trained, tmp_path, capsys):
    """Issue 23: channel pruning was silent for minutes; it now counts its groups on stderr."""
    from designer.pruning.run import PruneRequest, run_prune
    run_prune(PruneRequest(model=MODEL, weights=trained, input_shape="1,1,8,8", dataset="digits", keep_macs=0.6,
                           mode="channels", finetune_epochs=0, out=tmp_path / "s.pt", progress=True))
    assert "channel groups: distortion curves" in capsys.readouterr().err
