"""A small, readable training loop: SGD (Nesterov) or AdamW, linear warm-up then cosine decay,
label smoothing, random-shift augmentation, seeded.

Batches come from :class:`designer.train.batches.Batches`: on the device when the split fits
there, otherwise from pinned host memory with a prefetching thread; loss and accuracy are
accumulated on the device and read once per epoch (a read per step would wait for the device
every step). ``compile`` wraps the model in ``torch.compile``; cuDNN autotuning is on for CUDA.

Mixed precision and channels-last are used where the device supports them (``"auto"``: on
CUDA, fp16 autocast with a gradient scaler and channels-last memory; on CPU, neither, since
bf16 autocast is slower than fp32 on most CPUs). Under ``torchrun`` (see
:mod:`designer.train.distributed`) the same call trains with DistributedDataParallel: each
process sees its shard of every epoch, the global batch stays ``batch_size``, and only rank 0
shows progress. ``train`` returns the metrics per epoch; ``evaluate`` gives loss and accuracy.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm import tqdm

from designer import checks
from designer.errors import Error
from designer.train.batches import DEFAULT_MAX_DEVICE_BYTES, Batches, LoaderBatches

OPTIMISERS = ("sgd", "adamw")


class TrainingDiverged(Error, ValueError):
    """The loss became NaN or infinite: training stops, and nothing is saved."""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64  # global: split over the processes under DDP
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    shift: int = 2  # random translation in pixels (0: no augmentation)
    seed: int = 0
    device: str = "cpu"  # cpu, cuda, or auto
    amp: str = "auto"  # auto, on or off
    channels_last: str = "auto"  # auto, on or off
    amp_dtype: str = "auto"  # float16, bfloat16, or auto: float16 on CUDA, bfloat16 on CPU
    compile: bool = False  # torch.compile the model (worth it for long runs on a GPU)
    resident: str = "auto"  # keep the training split on the device: auto (when it fits), on or off
    max_device_bytes: int = DEFAULT_MAX_DEVICE_BYTES  # what "auto" lets live on the device
    progress: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMISERS:
            raise ValueError(f"optimizer: must be one of {', '.join(OPTIMISERS)}, got {self.optimizer!r}")
        checks.choice(self.amp_dtype, "amp_dtype", ("auto", "float16", "bfloat16"))
        for name in ("amp", "channels_last", "resident"):
            if getattr(self, name) not in ("auto", "on", "off"):
                raise ValueError(f"{name}: must be auto, on or off, got {getattr(self, name)!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device: must be cpu, cuda or auto, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device: cuda was asked for but torch sees no CUDA device")
        checks.integer(self.epochs, "epochs", minimum=0)
        checks.integer(self.batch_size, "batch_size", minimum=1)
        checks.positive(self.lr, "lr")
        checks.number(self.weight_decay, "weight_decay", minimum=0)
        checks.fraction(self.momentum, "momentum", include_one=False)
        checks.number(self.warmup_epochs, "warmup_epochs", minimum=0)
        checks.fraction(self.label_smoothing, "label_smoothing", include_one=False)
        checks.integer(self.shift, "shift", minimum=0)

    def resolved_device(self) -> torch.device:
        from designer.checkpoint import resolve_device
        return resolve_device(self.device)

    def autocast_dtype(self, device: torch.device) -> torch.dtype:
        if self.amp_dtype == "auto":
            return torch.float16 if device.type == "cuda" else torch.bfloat16
        return getattr(torch, self.amp_dtype)

    def uses(self, feature: str, device: torch.device) -> bool:
        """Whether mixed precision (``amp``) or ``channels_last`` is on for this device."""
        setting = getattr(self, feature)
        return setting == "on" or (setting == "auto" and device.type == "cuda")


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset | DataLoader, batch_size: int = 256) -> dict[str, float]:
    """Loss and accuracy on ``dataset`` (a ``TensorDataset``, any ``Dataset`` of (image, label),
    or a ``DataLoader``), on the model's device; one read of the device at the end."""
    model.eval()
    device = next(model.parameters()).device
    loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    n = 0
    for x, y in _batches_of(dataset, batch_size):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
    return {"loss": loss.item() / n, "accuracy": correct.item() / n}


def _batches_of(dataset: Dataset | DataLoader, batch_size: int):
    if isinstance(dataset, TensorDataset):  # slices of the tensors: no per-sample collation
        images, labels = dataset.tensors
        for start in range(0, len(labels), batch_size):
            yield images[start:start + batch_size], labels[start:start + batch_size]
        return
    yield from dataset if isinstance(dataset, DataLoader) else DataLoader(dataset, batch_size=batch_size)


def _optimiser(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                           weight_decay=config.weight_decay)


def _warmup_cosine(total_steps: int, warmup_steps: int):
    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(1, total_steps - warmup_steps)))
    return schedule


def train(model: nn.Module, train_set: Dataset | DataLoader, config: TrainConfig,
          val_set: Dataset | DataLoader | None = None) -> list[dict[str, float]]:
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    world, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
    device = config.resolved_device()
    if distributed and device.type == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
    amp = config.uses("amp", device)
    memory_format = torch.channels_last if config.uses("channels_last", device) else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)

    torch.manual_seed(config.seed)
    if isinstance(train_set, TensorDataset):  # ours: device-resident, augmented, bit-identical per seed
        batches = Batches(train_set, max(1, config.batch_size // world), device, seed=config.seed,
                          shift_pixels=config.shift, resident={"auto": None, "on": True, "off": False}[config.resident],
                          max_device_bytes=config.max_device_bytes, rank=rank, world=world,
                          memory_format=memory_format)
    else:  # a user's Dataset or DataLoader (its own sampler, transforms and workers)
        batches = LoaderBatches(train_set, max(1, config.batch_size // world), device, config.seed, memory_format)
    if distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    else:
        wrapped = model
    if config.compile:
        wrapped = torch.compile(wrapped)
    optimiser = _optimiser(model, config)
    total = max(1, config.epochs * len(batches))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, _warmup_cosine(total, int(config.warmup_epochs * len(batches))))
    autocast_dtype = config.autocast_dtype(device)
    # fp16 needs loss scaling against underflowing gradients; bf16 has fp32's range and does not
    scaler = torch.amp.GradScaler(device.type, enabled=amp and autocast_dtype == torch.float16)

    history = []
    for epoch in range(config.epochs):
        wrapped.train()
        # accumulated on the device; read once per epoch, not per step (a read waits for the device)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        seen = 0
        steps = tqdm(batches.epoch(epoch), total=len(batches), desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                     disable=not config.progress or rank != 0)
        for x, y in steps:
            autocast = (torch.autocast(device.type, dtype=autocast_dtype) if amp else contextlib.nullcontext())
            with autocast:
                logits = wrapped(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
        totals = torch.stack([loss_sum, correct.to(torch.float64), torch.tensor(float(seen), device=device,
                                                                                dtype=torch.float64)])
        if distributed:
            # DDP broadcasts rank 0's BN statistics before each forward, so after the last
            # step every rank holds its own; make them rank 0's for evaluation and saving
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)
            dist.all_reduce(totals)  # the epoch's training figures over every shard
        running, correct_count, seen_all = totals.tolist()
        if not math.isfinite(running):
            raise TrainingDiverged(f"training diverged: the loss is {running / seen_all} in epoch {epoch + 1}; lower "
                                   f"--lr (now {config.lr:g}) or check the data")
        record = {"epoch": epoch + 1, "train_loss": running / seen_all, "train_accuracy": correct_count / seen_all}
        if val_set is not None:
            metrics = evaluate(model, val_set)
            record.update(val_loss=metrics["loss"], val_accuracy=metrics["accuracy"])
        history.append(record)
        if config.progress and rank == 0:
            tqdm.write(f"epoch {epoch + 1}/{config.epochs}: loss {record['train_loss']:.3f}, "
                       f"accuracy {record['train_accuracy']:.3f}")
    return history
