"""A small, readable training loop: SGD (Nesterov) or AdamW, linear warm-up then cosine decay,
label smoothing, random-shift augmentation, seeded.

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
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from tqdm import tqdm

from designer import checks

OPTIMISERS = ("sgd", "adamw")


class TrainingDiverged(ValueError):
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
    progress: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMISERS:
            raise ValueError(f"optimizer: must be one of {', '.join(OPTIMISERS)}, got {self.optimizer!r}")
        for name in ("amp", "channels_last"):
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
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def uses(self, feature: str, device: torch.device) -> bool:
        """Whether mixed precision (``amp``) or ``channels_last`` is on for this device."""
        setting = getattr(self, feature)
        return setting == "on" or (setting == "auto" and device.type == "cuda")


def _shift(images: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    if pixels <= 0:
        return images
    padded = F.pad(images, (pixels,) * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * pixels + 1, (2,), generator=generator).tolist()
    return padded[..., dy:dy + images.shape[-2], dx:dx + images.shape[-1]]


@torch.no_grad()
def evaluate(model: nn.Module, dataset: TensorDataset, batch_size: int = 256) -> dict[str, float]:
    model.eval()
    device = next(model.parameters()).device
    loss = correct = 0.0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        x, y = x.to(device), y.to(device)
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    n = len(dataset)
    return {"loss": loss / n, "accuracy": correct / n}


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


def train(model: nn.Module, train_set: TensorDataset, config: TrainConfig,
          val_set: TensorDataset | None = None) -> list[dict[str, float]]:
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    world, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
    device = config.resolved_device()
    if distributed and device.type == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
    amp = config.uses("amp", device)
    memory_format = torch.channels_last if config.uses("channels_last", device) else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)

    torch.manual_seed(config.seed)
    # each rank draws its own augmentation; the shuffle is shared through the sampler's seed
    generator = torch.Generator().manual_seed(config.seed + rank)
    per_process_batch = max(1, config.batch_size // world)
    if distributed:
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
        loader = DataLoader(train_set, batch_size=per_process_batch, sampler=sampler)
        device_ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    else:
        sampler = None
        loader = DataLoader(train_set, batch_size=per_process_batch, shuffle=True, generator=generator)
        wrapped = model
    optimiser = _optimiser(model, config)
    total = max(1, config.epochs * len(loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, _warmup_cosine(total, int(config.warmup_epochs * len(loader))))
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    autocast_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16

    history = []
    for epoch in range(config.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        wrapped.train()
        running = seen = correct = 0.0
        batches = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                       disable=not config.progress or rank != 0)
        for x, y in batches:
            x = _shift(x, config.shift, generator).to(device, memory_format=memory_format)
            y = y.to(device)
            autocast = (torch.autocast(device.type, dtype=autocast_dtype) if amp else contextlib.nullcontext())
            with autocast:
                logits = wrapped(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(f"training diverged: the loss is {value} at epoch {epoch + 1}, step "
                                       f"{seen // max(1, len(y)) + 1}; lower --lr (now {config.lr:g}) or check the data")
            running += value * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            batches.set_postfix(loss=f"{running / seen:.3f}", acc=f"{correct / seen:.3f}")
        if distributed:
            # DDP broadcasts rank 0's BN statistics before each forward, so after the last
            # step every rank holds its own; make them rank 0's for evaluation and saving
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)
            # the epoch's training figures over every shard
            totals = torch.tensor([running, correct, seen], dtype=torch.float64, device=device)
            dist.all_reduce(totals)
            running, correct, seen = totals.tolist()
        record = {"epoch": epoch + 1, "train_loss": running / seen, "train_accuracy": correct / seen}
        if val_set is not None:
            metrics = evaluate(model, val_set)
            record.update(val_loss=metrics["loss"], val_accuracy=metrics["accuracy"])
        history.append(record)
    return history
