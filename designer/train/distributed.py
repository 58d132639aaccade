"""Training on several processes or machines with torch DDP, started by ``torchrun``.

    torchrun --nproc_per_node 2 -m designer.cli train SPEC --dataset mnist5k --out run/

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and the rendezvous address in the environment;
:func:`init_from_environment` joins the process group (gloo on CPU, nccl on GPU) when they
are there and does nothing otherwise, so one command line serves both. Rank 0 writes the
checkpoint and metrics; :func:`parameter_spread` checks that every rank ended with the same
parameters, which DDP's gradient all-reduce promises.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch import nn


def init_from_environment(device: str = "cpu") -> bool:
    """Join the process group that ``torchrun`` describes; False when not under torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    use_nccl = device != "cpu" and torch.cuda.is_available()
    if use_nccl:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    return True


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def parameter_spread(model: nn.Module) -> float:
    """The largest difference between any rank's parameters and buffers and rank 0's (0 alone)."""
    if not dist.is_initialized():
        return 0.0
    flat = torch.cat([t.detach().float().flatten() for t in model.state_dict().values()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    spread = (flat - reference).abs().max()
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    return float(spread)


def finish() -> bool:
    """Wait for every rank, leave the process group; whether there was one."""
    if not dist.is_initialized():
        return False
    dist.barrier()
    dist.destroy_process_group()
    return True


def exit_now(code: int = 0) -> None:
    """End a distributed worker without the interpreter's finalization, where gloo's worker
    threads can still hold tensors and abort the process (SIGABRT, "terminate called without an
    active exception"; seen once here under load, and pytorch/pytorch#179291): everything it
    writes is written and flushed by now."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
