"""Training: optimisers, mixed precision, image folders, and DDP on two CPU processes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from designer.checkpoint import load_checkpoint
from designer.network import build
from designer.spec import NetworkSpec, Stage, Stem
from designer.train.data import load_dataset
from designer.train.loop import TrainConfig, evaluate, train

SMALL = NetworkSpec(name="small", resolution=8, in_channels=1, num_classes=10, stem=Stem(out=16, k=3, stride=1),
                    stages=[Stage("basic", out=32, btn=32, k=3, L=1, stride=1),
                            Stage("basic", out=64, btn=64, k=3, L=1, stride=2)])


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.05), ("adamw", 3e-3)])
def test_optimisers_learn_digits(digits, optimizer, lr):
    torch.manual_seed(0)
    model = build(SMALL)
    history = train(model, digits.train, TrainConfig(epochs=3, optimizer=optimizer, lr=lr, batch_size=16),
                    val_set=digits.val)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert evaluate(model, digits.test)["accuracy"] > 0.7  # chance is 0.1


def test_training_is_reproducible(digits):
    weights = []
    for _ in range(2):
        torch.manual_seed(1)
        model = build(SMALL)
        train(model, digits.train, TrainConfig(epochs=1, seed=3))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_mixed_precision_and_channels_last_on_cpu(digits):
    torch.manual_seed(0)
    model = build(SMALL)
    config = TrainConfig(epochs=2, batch_size=16, amp="on", channels_last="on")
    assert config.uses("amp", torch.device("cpu")) and not TrainConfig().uses("amp", torch.device("cpu"))
    history = train(model, digits.train, config)
    assert all(np.isfinite(h["train_loss"]) for h in history)
    assert next(model.parameters()).dtype == torch.float32  # autocast leaves the weights in fp32
    assert evaluate(model, digits.test)["accuracy"] > 0.5


@pytest.mark.parametrize("field, value, message", [("optimizer", "adam", "optimizer"), ("amp", "yes", "amp"),
                                                   ("device", "tpu", "device")])
def test_config_validation(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def _write_folder(root, classes=3, per_class=20, size=12, mode="L"):
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.random((size, size) if mode == "L" else (size, size, 3)) * 60 + 60 * c).astype(np.uint8)
            Image.fromarray(pixels, mode).save(root / f"class{c}" / f"{i}.png")


def test_image_folder_dataset(tmp_path):
    _write_folder(tmp_path / "grey")
    splits = load_dataset(str(tmp_path / "grey"))
    assert (splits.num_classes, splits.in_channels, splits.resolution) == (3, 1, 12)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 60
    resized = load_dataset(str(tmp_path / "grey"), resolution=8)
    assert resized.train.tensors[0].shape[1:] == (1, 8, 8)
    _write_folder(tmp_path / "rgb", classes=2, mode="RGB")
    assert load_dataset(str(tmp_path / "rgb")).in_channels == 3
    # the class of an image is its folder: brighter folders, brighter images
    x, y = splits.train.tensors
    means = [x[y == c].mean().item() for c in range(3)]
    assert means == sorted(means)


def test_image_folder_errors(tmp_path):
    _write_folder(tmp_path / "one", classes=1)
    with pytest.raises(ValueError, match="at least two class"):
        load_dataset(str(tmp_path / "one"))
    _write_folder(tmp_path / "two", classes=2)
    (tmp_path / "two" / "empty").mkdir()
    with pytest.raises(ValueError, match="no images: empty"):
        load_dataset(str(tmp_path / "two"))


def test_ddp_two_processes_on_cpu(tmp_path):
    """torchrun with the CLI's own flags: both ranks end with the same parameters, and the
    checkpoint rank 0 writes is accepted by `prune` and `map`."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "designer.cli", "train", "tiny-cifar", "--dataset", "digits", "--epochs", "1",
               "--device", "cpu", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["rank_parameter_spread"] == 0.0
    model, metadata = load_checkpoint(out / "checkpoint.pt")
    assert metadata["dataset"] == "digits"
    assert metrics["test"]["accuracy"] == pytest.approx(evaluate(model, load_dataset("digits").test)["accuracy"])
    from typer.testing import CliRunner
    from designer.cli import app
    pruned = CliRunner().invoke(app, ["prune", str(out / "checkpoint.pt"), "--sparsity", "0.5", "--schedule", "one-shot",
                                      "--grid", "11", "--calibration", "64", "--finetune-epochs",
                                      "0", "--out", str(tmp_path / "pruned.pt"), "--json"])
    assert pruned.exit_code == 0, pruned.output
    mapped = CliRunner().invoke(app, ["map", str(out / "checkpoint.pt"), "--scratchpad", "M_H", "--time-limit", "10",
                                      "--json"])
    assert mapped.exit_code == 0, mapped.output
    assert json.loads(mapped.stdout)["valid"]


def test_cli_train_on_an_image_folder_with_adamw(tmp_path):
    from typer.testing import CliRunner
    from designer.cli import app
    _write_folder(tmp_path / "data", classes=3, per_class=20, size=12)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "tiny-cifar", "--dataset", str(tmp_path / "data"), "--resolution", "8",
                                      "--optimizer", "adamw", "--lr", "0.003", "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["optimizer"] == "adamw" and metrics["world_size"] == 1
    model, _ = load_checkpoint(out / "checkpoint.pt")
    assert (model.spec.resolution, model.spec.in_channels, model.spec.num_classes) == (8, 1, 3)
    bad = CliRunner().invoke(app, ["train", "tiny-cifar", "--optimizer", "lbfgs"])
    assert bad.exit_code == 2 and "optimizer" in bad.output


def test_train_and_evaluate_take_any_dataset_or_dataloader():
    """Issue 23: a user's own Dataset (here one that builds samples on the fly) or DataLoader."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    from designer.train.loop import TrainConfig, evaluate, train

    class Stripes(Dataset):  # label 1: a bright top half
        def __len__(self):
            return 64

        def __getitem__(self, i):
            image = torch.zeros(1, 8, 8)
            if i % 2:
                image[:, :4] = 1.0
            return image, i % 2

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    config = TrainConfig(epochs=3, lr=0.1, warmup_epochs=0, batch_size=16, device="cpu", progress=False)
    history = train(model, Stripes(), config, val_set=DataLoader(Stripes(), batch_size=32))
    assert len(history) == 3 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert evaluate(model, DataLoader(Stripes(), batch_size=10))["accuracy"] == evaluate(model, Stripes())["accuracy"]
    assert evaluate(model, Stripes())["accuracy"] == 1.0


def test_the_textures_dataset_is_fixed_balanced_and_not_trivial():
    """Issue 34, item 5: the built-in ``textures`` is the same images whatever the split seed,
    10 balanced classes of 32x32 colour, and no single colour statistic gives the class away (a
    nearest-class-mean on the mean colour stays near chance: the shape is what tells)."""
    import numpy as np

    from designer.train.generated import make_textures
    first, second = load_dataset("textures", seed=0), load_dataset("textures", seed=1)
    assert (first.num_classes, first.in_channels, first.resolution) == (10, 3, 32)
    sizes = [len(s) for s in (first.train, first.val, first.test)]
    assert sum(sizes) == 6000
    x, y = make_textures(n=400)
    again, _ = make_textures(n=400)
    assert np.array_equal(x, again) and np.bincount(y).tolist() == [40] * 10
    assert 0.0 <= x.min() and x.max() <= 1.0
    colour = x.mean(axis=(2, 3))
    means = np.stack([colour[y == c].mean(axis=0) for c in range(10)])
    guess = np.argmin(((colour[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (guess == y).mean() < 0.3
    assert not torch.equal(first.train.tensors[0][:5], second.train.tensors[0][:5])  # the split seed reorders
