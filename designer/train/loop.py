"""A small, readable training loop: SGD with Nesterov momentum, linear warm-up then cosine
decay, label smoothing, random-shift augmentation, seeded. ``train`` returns the metrics
per epoch; ``evaluate`` gives loss and accuracy."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    shift: int = 2  # random translation in pixels (0: no augmentation)
    seed: int = 0
    progress: bool = False


def _shift(images: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    if pixels <= 0:
        return images
    padded = F.pad(images, (pixels,) * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * pixels + 1, (2,), generator=generator).tolist()
    return padded[..., dy:dy + images.shape[-2], dx:dx + images.shape[-1]]


@torch.no_grad()
def evaluate(model: nn.Module, dataset: TensorDataset, batch_size: int = 256) -> dict[str, float]:
    model.eval()
    loss = correct = 0.0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    n = len(dataset)
    return {"loss": loss / n, "accuracy": correct / n}


def train(model: nn.Module, train_set: TensorDataset, config: TrainConfig,
          val_set: TensorDataset | None = None) -> list[dict[str, float]]:
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=generator, drop_last=False)
    optimiser = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    total = max(1, config.epochs * len(loader))
    warmup = int(config.warmup_epochs * len(loader))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    history = []
    for epoch in range(config.epochs):
        model.train()
        running = seen = correct = 0.0
        batches = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, disable=not config.progress)
        for x, y in batches:
            x = _shift(x, config.shift, generator)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            running += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            batches.set_postfix(loss=f"{running / seen:.3f}", acc=f"{correct / seen:.3f}")
        record = {"epoch": epoch + 1, "train_loss": running / seen, "train_accuracy": correct / seen}
        if val_set is not None:
            metrics = evaluate(model, val_set)
            record.update(val_loss=metrics["loss"], val_accuracy=metrics["accuracy"])
        history.append(record)
    return history
