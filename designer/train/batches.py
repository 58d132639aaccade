"""Shuffled, augmented batches at the accelerator's pace.

Two paths give the *same batches, bit for bit*, for the same seed: every random draw (the
epoch's permutation, each batch's shift) is made by a CPU generator, and only then applied
where the data lives.

* **Device-resident** (datasets that fit under ``max_device_bytes``; ours all do): the split
  is copied to the device once; each batch is an index into it and the shift a slice of a
  padded copy, both on the device. Nothing crosses the bus per step.
* **Host** (larger datasets): the split stays in (pinned, on CUDA) host memory; a background
  thread gathers the next batch while the device works on this one, and copies are
  ``non_blocking``.

Under DDP every rank draws the same permutation (seeded by seed and epoch), padded to a
multiple of the world size as ``DistributedSampler`` does, and takes every ``world``-th index
from its rank; its augmentation draws are its own.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

DEFAULT_MAX_DEVICE_BYTES = 4 * 2 ** 30


def shift(images: torch.Tensor, pixels: int, offsets: tuple[int, int]) -> torch.Tensor:
    """Translate a batch by ``offsets`` (dx, dy in [0, 2 pixels]) with replicated borders."""
    if pixels <= 0:
        return images
    dx, dy = offsets
    padded = F.pad(images, (pixels,) * 4, mode="replicate")
    return padded[..., dy:dy + images.shape[-2], dx:dx + images.shape[-1]]


class Batches:
    """The batches of one process for every epoch (see the module docstring)."""

    def __init__(self, dataset: TensorDataset, batch_size: int, device: torch.device, seed: int = 0,
                 shift_pixels: int = 0, resident: bool | None = None, max_device_bytes: int = DEFAULT_MAX_DEVICE_BYTES,
                 rank: int = 0, world: int = 1, memory_format: torch.memory_format = torch.contiguous_format):
        self.images, self.labels = dataset.tensors
        self.batch_size, self.device, self.seed, self.shift_pixels = batch_size, device, seed, shift_pixels
        self.rank, self.world, self.memory_format = rank, world, memory_format
        size = self.images.numel() * self.images.element_size() + self.labels.numel() * self.labels.element_size()
        self.resident = size <= max_device_bytes if resident is None else resident
        if self.resident:
            self.images, self.labels = self.images.to(device), self.labels.to(device)
        elif device.type == "cuda":
            self.images, self.labels = self.images.pin_memory(), self.labels.pin_memory()
        self.augment = torch.Generator().manual_seed(seed + rank)  # this rank's own draws

    @property
    def per_process(self) -> int:
        return -(-len(self.labels) // self.world)

    def __len__(self) -> int:
        return -(-self.per_process // self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's sample order in ``epoch`` (a CPU tensor)."""
        if self.world == 1:
            return torch.randperm(len(self.labels), generator=self.augment)
        shared = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.labels), generator=shared)
        padded = torch.cat([order, order[:self.per_process * self.world - len(order)]])
        return padded[self.rank::self.world]

    def plan(self, epoch: int) -> list[tuple[torch.Tensor, tuple[int, int]]]:
        """Every batch of the epoch as (indices, shift offsets), drawn before any is made."""
        order = self.order(epoch)
        plan = []
        for start in range(0, len(order), self.batch_size):
            offsets = (0, 0)
            if self.shift_pixels > 0:
                dx, dy = torch.randint(0, 2 * self.shift_pixels + 1, (2,), generator=self.augment).tolist()
                offsets = (dx, dy)
            plan.append((order[start:start + self.batch_size], offsets))
        return plan

    def _make(self, indices: torch.Tensor, offsets: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.resident:
            indices = indices.to(self.device, non_blocking=True)
        x, y = self.images[indices], self.labels[indices]
        if not self.resident:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
        return shift(x, self.shift_pixels, offsets).contiguous(memory_format=self.memory_format), y

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        plan = self.plan(epoch)
        if self.resident:
            for indices, offsets in plan:
                yield self._make(indices, offsets)
            return
        yield from self._prefetched(plan)

    def _prefetched(self, plan) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The host path: a thread gathers (and starts copying) the next batches ahead."""
        ready: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def produce() -> None:
            for indices, offsets in plan:
                if stop.is_set():
                    return
                ready.put(self._make(indices, offsets))
            ready.put(None)

        worker = threading.Thread(target=produce, daemon=True)
        worker.start()
        try:
            while (batch := ready.get()) is not None:
                yield batch
        finally:
            stop.set()
            while worker.is_alive():  # drain so the producer is never blocked on a full queue
                try:
                    ready.get(timeout=0.1)
                except queue.Empty:
                    pass
            worker.join()


class LoaderBatches:
    """Any ``Dataset`` or ``DataLoader`` a user brings, with :class:`Batches`' interface: a
    ``DataLoader`` is used as it is (its own sampler, workers and transforms; a sampler with
    ``set_epoch``, e.g. ``DistributedSampler``, is told the epoch); a ``Dataset`` is loaded in
    shuffled batches, the order drawn from ``seed`` and the epoch. Batches are (images, labels)
    moved to ``device``; augmentation is the loader's business (``shift_pixels`` is not applied)."""

    def __init__(self, source, batch_size: int, device: torch.device, seed: int = 0,
                 memory_format: torch.memory_format = torch.contiguous_format):
        from torch.utils.data import DataLoader
        self.device, self.seed, self.memory_format = device, seed, memory_format
        self.generator = torch.Generator()
        self.loader = source if isinstance(source, DataLoader) else DataLoader(
            source, batch_size=batch_size, shuffle=True, generator=self.generator)

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.generator.manual_seed(self.seed * 100_003 + epoch)
        if hasattr(getattr(self.loader, "sampler", None), "set_epoch"):
            self.loader.sampler.set_epoch(epoch)
        non_blocking = self.device.type == "cuda"
        for images, labels in self.loader:
            yield (images.to(self.device, non_blocking=non_blocking, memory_format=self.memory_format),
                   labels.to(self.device, non_blocking=non_blocking))
