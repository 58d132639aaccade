"""Timing a module's forward pass the same way everywhere: warm-ups first, the device
synchronised around each run (CUDA queues kernels; a timer must wait for them), the median."""

from __future__ import annotations

import contextlib
import time

import torch
from torch import nn


def median_forward_seconds(module: nn.Module, inputs: torch.Tensor, repeats: int = 20, warmups: int = 2,
                           dtype: torch.dtype | None = None) -> float:
    """Median seconds of ``module(inputs)`` under inference mode (``dtype``: autocast to it)."""
    cuda = inputs.device.type == "cuda"
    times = []
    with torch.inference_mode():
        for i in range(warmups + repeats):
            autocast = (torch.autocast(inputs.device.type, dtype=dtype) if dtype is not None
                        else contextlib.nullcontext())
            if cuda:
                torch.cuda.synchronize(inputs.device)
            start = time.perf_counter()
            with autocast:
                module(inputs)
            if cuda:
                torch.cuda.synchronize(inputs.device)
            if i >= warmups:
                times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
