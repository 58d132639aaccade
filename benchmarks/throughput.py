"""Training and inference throughput, and how much of it the project's training loop keeps.

For each model: images/s of a plain training loop on device-resident data (forward, loss,
backward, optimiser step; the batch already on the device), images/s of the project's
``designer.train.loop.train`` on the same images (its data path, augmentation, schedule and
bookkeeping included), their ratio (the *loop efficiency*), and inference images/s. Same model,
batch, precision and memory format for all three; every timing synchronises the device.

Models (``--models``):
  pipeline            the pipeline's design for the digits dataset (8x8, 10 classes)
  tiny-cifar, resnet18, deepmad-r18, deepmad-r34, deepmad-r50, ...   built-in specs (zoo)
  design:LEVEL        the MILP's design at a zoo level's budgets (``--design-seconds``)
  tv-resnet18, tv-resnet50   torchvision-style ResNets written by hand (tests/models/cifar.py)
  NAME@R              NAME at R x R input (``--resolution`` sets it for every model)

    python benchmarks/throughput.py                                  # CPU defaults: small models
    python benchmarks/throughput.py --device cuda --precision bf16 --batch 128 --resolution 224 \\
        --models design:deepmad-r50 deepmad-r50 tv-resnet50 --steps 30
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.models.cifar import tv_resnet18, tv_resnet50  # noqa: E402

from designer import zoo  # noqa: E402
from designer.checkpoint import resolve_device  # noqa: E402
from designer.network import build  # noqa: E402
from designer.train.loop import TrainConfig, train  # noqa: E402


def make_model(name: str, resolution: int | None, classes: int, design_seconds: float) -> tuple[nn.Module, int, int]:
    """The model, its input resolution and input channels."""
    if name.startswith("tv-"):
        factory = {"tv-resnet18": tv_resnet18, "tv-resnet50": tv_resnet50}[name]
        return factory(num_classes=classes), resolution or 224, 3
    if name == "pipeline":
        from designer.design import solve
        from designer.pipeline import PipelineConfig, pipeline_problem
        spec = solve(pipeline_problem(PipelineConfig(), 8, 1, 10), time_limit=design_seconds).spec
    elif name.startswith("design:"):
        from design import level_problem  # benchmarks/design.py
        from designer.design import solve
        spec = solve(level_problem(name.split(":", 1)[1])[0], time_limit=design_seconds).spec
    else:
        spec = zoo.load(name)
    spec = spec.replace(resolution=resolution, num_classes=classes)
    return build(spec), spec.resolution, spec.in_channels


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def plain_training(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int, steps: int,
                   dtype: torch.dtype | None, memory_format) -> float:
    """Images/s of the simplest loop: batches already on the device, no augmentation."""
    device = images.device
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    batches = [(images[i:i + batch].contiguous(memory_format=memory_format), labels[i:i + batch])
               for i in range(0, len(labels) - batch + 1, batch)]
    model.train()

    def run(count: int) -> None:
        for x, y in (batches * (count // len(batches) + 1))[:count]:
            with autocast(device, dtype):
                loss = F.cross_entropy(model(x).float(), y)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()

    run(3)  # warm-up: allocation, cuDNN autotuning
    synchronize(device)
    start = time.perf_counter()
    run(steps)
    synchronize(device)
    return steps * batch / (time.perf_counter() - start)


def project_training(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int, epochs: int,
                     config: dict) -> float:
    """Images/s of ``designer.train.loop.train`` over the same images (a warm-up epoch first)."""
    data = TensorDataset(images.cpu(), labels.cpu())  # as a user holds a dataset: in host memory
    train(model, data, TrainConfig(epochs=1, batch_size=batch, **config))
    synchronize(next(model.parameters()).device)
    start = time.perf_counter()
    train(model, data, TrainConfig(epochs=epochs, batch_size=batch, **config))
    synchronize(next(model.parameters()).device)
    return epochs * len(labels) / (time.perf_counter() - start)


@torch.inference_mode()
def inference(model: nn.Module, images: torch.Tensor, batch: int, steps: int, dtype: torch.dtype | None,
              memory_format) -> float:
    model.eval()
    x = images[:batch].contiguous(memory_format=memory_format)
    for _ in range(3):
        with autocast(images.device, dtype):
            model(x)
    synchronize(images.device)
    start = time.perf_counter()
    for _ in range(steps):
        with autocast(images.device, dtype):
            model(x)
    synchronize(images.device)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["pipeline", "tiny-cifar", "resnet18@32"],
                        help="model names; NAME@R runs NAME at R x R input")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=None, help="input size (default: each spec's own)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40, help="timed steps of the plain loop and of inference")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs of train() over steps x batch images")
    parser.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement; the best is reported")
    parser.add_argument("--design-seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    channels_last = args.channels_last == "on" or (args.channels_last == "auto" and device.type == "cuda")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; precision {args.precision}; batch {args.batch}; "
          f"channels-last {'on' if channels_last else 'off'}\n")
    print("| model | params | resolution | train images/s (plain loop) | train images/s (train()) | loop efficiency "
          "| inference images/s |")
    print("|---|---|---|---|---|---|---|")
    config = dict(device=device.type, amp="on" if dtype is not None else "off",
                  amp_dtype="auto" if dtype is None else {torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype],
                  channels_last="on" if channels_last else "off", warmup_epochs=0.0)
    for model_name in args.models:
        torch.manual_seed(0)
        base, _, own = model_name.partition("@")
        model, resolution, channels = make_model(base, int(own) if own else args.resolution, args.classes,
                                                 args.design_seconds)
        model.to(device=device, memory_format=memory_format)
        n = args.steps * args.batch
        images = torch.randn(n, channels, resolution, resolution, device=device)
        labels = torch.randint(0, args.classes, (n,), device=device)
        # the best of --repeats runs each, interleaved, so that a noisy stretch hits both loops alike
        plain = ours = infer = 0.0
        for _ in range(args.repeats):
            plain = max(plain, plain_training(model, images, labels, args.batch, args.steps, dtype, memory_format))
            ours = max(ours, project_training(model, images, labels, args.batch, args.epochs, config))
            infer = max(infer, inference(model, images, args.batch, args.steps, dtype, memory_format))
        params = sum(p.numel() for p in model.parameters())
        print(f"| {model_name} | {params / 1e6:.2f}M | {resolution} | {plain:,.0f} | {ours:,.0f} | {ours / plain:.3f} "
              f"| {infer:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
