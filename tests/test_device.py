"""The data path and the device: the device-resident batches equal the host path's bit for bit,
checkpoints load on either device, and ``--device`` reaches every step. Tests marked ``cuda``
need a GPU (``benchmarks/device_check.sh`` runs them there) and are skipped here."""

import json

import pytest
import torch
from torch.utils.data import TensorDataset

from designer.checkpoint import load_checkpoint, resolve_device, save_checkpoint
from designer.network import build
from designer.spec import NetworkSpec
from designer.train.batches import Batches
from designer.train.data import load_dataset
from designer.train.loop import TrainConfig, evaluate, train

SPEC = {"resolution": 8, "in_channels": 1, "num_classes": 10, "stem": {"out": 8, "k": 3, "stride": 1},
        "stages": [{"family": "bottleneck", "out": 16, "btn": 8, "k": 3, "L": 1, "stride": 2}]}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def toy_dataset(n: int = 100) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator))


@pytest.mark.parametrize("world", [1, 3])
def test_device_resident_batches_equal_the_host_path_bit_for_bit(world):
    data = toy_dataset(101)
    for rank in range(world):
        on_device = Batches(data, 16, torch.device("cpu"), seed=5, shift_pixels=2, resident=True, rank=rank,
                            world=world)
        on_host = Batches(data, 16, torch.device("cpu"), seed=5, shift_pixels=2, resident=False, rank=rank,
                          world=world)
        assert len(on_device) == len(on_host) == -(-(-(-101 // world)) // 16)
        for epoch in range(2):
            pairs = list(zip(on_device.epoch(epoch), on_host.epoch(epoch), strict=True))
            assert len(pairs) == len(on_device)
            for (x1, y1), (x2, y2) in pairs:
                assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_every_sample_once_per_epoch_and_ranks_share_the_permutation():
    data = TensorDataset(torch.arange(50.0).reshape(50, 1, 1, 1), torch.arange(50))
    seen = []
    for rank in range(2):
        batches = Batches(data, 8, torch.device("cpu"), seed=1, rank=rank, world=2)
        seen += [int(v) for _, y in batches.epoch(0) for v in y]
    assert sorted(seen) == list(range(50))  # 50 splits evenly: no padding
    single = Batches(data, 8, torch.device("cpu"), seed=1)
    assert sorted(int(v) for _, y in single.epoch(3) for v in y) == list(range(50))


def test_training_is_identical_on_either_data_path():
    splits = load_dataset("digits")
    results = []
    for resident in ("on", "off"):
        torch.manual_seed(0)
        model = build(NetworkSpec.from_dict(SPEC))
        history = train(model, splits.train, TrainConfig(epochs=2, seed=3, resident=resident))
        results.append((history, [p.detach().clone() for p in model.parameters()]))
    (history_a, params_a), (history_b, params_b) = results
    assert history_a == history_b
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b))


def test_checkpoints_load_on_the_device_asked_for(tmp_path):
    torch.manual_seed(0)
    model = build(NetworkSpec.from_dict(SPEC))
    save_checkpoint(model, tmp_path / "c.pt", dataset="digits")
    for device in ("cpu", "auto"):
        loaded, metadata = load_checkpoint(tmp_path / "c.pt", device)
        assert next(loaded.parameters()).device == resolve_device(device)
        assert metadata == {"dataset": "digits"}
        assert all(torch.equal(a.cpu(), b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    with pytest.raises(ValueError, match="device: must be auto, cpu or cuda"):
        load_checkpoint(tmp_path / "c.pt", "tpu")


def test_prune_and_pipeline_take_the_device(tmp_path):
    from designer.cli import main
    from designer.pipeline import PipelineConfig
    assert PipelineConfig(device="cpu").device == "cpu"
    torch.manual_seed(0)
    save_checkpoint(build(NetworkSpec.from_dict(SPEC)), tmp_path / "c.pt", dataset="digits", seed=0)
    with pytest.raises(SystemExit) as exit_info:
        main(["prune", str(tmp_path / "c.pt"), "--sparsity", "0.5", "--method", "lamp", "--finetune-epochs", "0",
              "--device", "cpu", "--out", str(tmp_path / "p.pt"), "--json"])
    assert exit_info.value.code == 0
    assert (tmp_path / "p.pt").exists()


@cuda
@pytest.mark.cuda
def test_cuda_training_matches_its_own_data_paths_and_checkpoints_cross_devices(tmp_path):
    splits = load_dataset("digits")
    results = []
    for resident in ("on", "off"):
        torch.manual_seed(0)
        model = build(NetworkSpec.from_dict(SPEC))
        train(model, splits.train, TrainConfig(epochs=1, seed=3, device="cuda", resident=resident, amp="off",
                                               channels_last="off"))
        results.append([p.detach().cpu() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))  # the same batches; cuDNN may differ in the last bits
    save_checkpoint(model, tmp_path / "gpu.pt", dataset="digits")
    on_cpu, _ = load_checkpoint(tmp_path / "gpu.pt", "cpu")
    on_gpu, _ = load_checkpoint(tmp_path / "gpu.pt", "cuda")
    assert next(on_gpu.parameters()).is_cuda and not next(on_cpu.parameters()).is_cuda
    assert abs(evaluate(on_cpu, splits.test)["accuracy"] - evaluate(on_gpu, splits.test)["accuracy"]) < 0.02


@cuda
@pytest.mark.cuda
def test_cuda_prune_and_pipeline(tmp_path):
    from designer.cli import main
    torch.manual_seed(0)
    save_checkpoint(build(NetworkSpec.from_dict(SPEC)), tmp_path / "c.pt", dataset="digits", seed=0)
    with pytest.raises(SystemExit) as exit_info:
        main(["prune", str(tmp_path / "c.pt"), "--sparsity", "0.5", "--grid", "11", "--device", "cuda",
              "--out", str(tmp_path / "p.pt"), "--json"])
    assert exit_info.value.code == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["pipeline", "--device", "cuda", "--epochs", "2", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 0
    figures = json.loads((tmp_path / "run" / "figures.json").read_text())
    assert figures["map"]["valid"]
