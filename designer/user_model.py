"""A user's own model as an input: ``--model PATH.py:FACTORY`` or ``--model package.module:factory``
(a callable returning an ``nn.Module``), ``--weights STATE.pt`` (a state dict, or a checkpoint
holding one under ``state_dict`` or ``model``), ``--input-shape 1,3,32,32``; and calibration
data as a tensor or a ``DataLoader``. Every failure is a ValueError that names the option.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset


def load_factory(reference: str, option: str = "--model") -> Callable[[], nn.Module]:
    """The callable ``reference`` names: ``path/to/file.py:name`` or ``package.module:name``."""
    where, sep, name = reference.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise ValueError(f"{option}: expected PATH.py:FACTORY or package.module:factory, got {reference!r}")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"{option}: {path}: no such file")
        module_name = f"mpdesign_user_{abs(hash(path.resolve()))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # the user's file: report what it raised, not our traceback
            del sys.modules[module_name]
            raise ValueError(f"{option}: importing {path} raised {type(error).__name__}: {error}") from None
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as error:
            raise ValueError(f"{option}: cannot import {where!r} ({error})") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ValueError(f"{option}: {where} has no callable {name!r}")
    return factory


def build_user_model(reference: str, weights: str | Path | None = None, option: str = "--model",
                     factory: Callable[[], nn.Module] | None = None) -> nn.Module:
    """The model the factory returns, with ``weights`` loaded (strictly: every name must match).
    ``factory``: the one :func:`load_factory` already found, so the user's file runs once."""
    factory = factory or load_factory(reference, option)
    try:
        model = factory()
    except Exception as error:
        raise ValueError(f"{option}: {reference}() raised {type(error).__name__}: {error}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"{option}: {reference}() returned a {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model: nn.Module, path: str | Path, option: str = "--weights") -> None:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{option}: {path}: no such file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{option}: {path}: not a file torch can read ({type(error).__name__})") from None
    if isinstance(data, dict) and not all(isinstance(v, torch.Tensor) for v in data.values()):
        data = data.get("state_dict", data.get("model"))
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{option}: {path}: expected a state dict (or a checkpoint with 'state_dict' or 'model')")
    data = {k.removeprefix("module."): v for k, v in data.items()}  # saved from DataParallel / DDP
    try:
        model.load_state_dict(data)
    except RuntimeError as error:
        first = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), str(error))
        raise ValueError(f"{option}: {path} does not fit the model: {first}") from None


MAX_INPUT_BYTES_SHARE = 0.25  # of this machine's memory, at most, for one float input


def parse_input_shape(text: str, option: str = "--input-shape") -> tuple[int, ...]:
    """A batch size then the input's sizes (``1,3,224,224``); ``C,H,W`` (three sizes, the ptflops
    habit) gets a batch of 1. An input that would take more than a quarter of this machine's
    memory is refused before anything is allocated."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated sizes such as 1,3,32,32, got {text!r}") from None
    if len(shape) < 2 or any(v < 1 for v in shape):
        raise ValueError(f"{option}: expected a batch size then the input's sizes, all positive, got {text!r}")
    if len(shape) == 3:
        shape = (1, *shape)
    need = 4 * math.prod(shape)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > MAX_INPUT_BYTES_SHARE * memory:
        raise ValueError(f"{option}: an input of shape {shape} takes {need / 2**30:.1f} GiB as float32, more than a "
                         f"quarter of this machine's {memory / 2**30:.0f} GiB")
    return shape


def check_forward(model: nn.Module, shape: tuple[int, ...], option: str = "--model", logits: bool = False) -> None:
    """The model takes one float tensor of ``shape`` and returns a float tensor (``logits``: of
    shape (batch, classes)) or, unless ``logits``, a tuple of them: checked by its forward's
    signature, then one forward pass on zeros, before any capture, calibration or training.
    Whatever else it needs (two inputs, integer tokens, a dict out) is named as such."""
    import inspect
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        parameters = []
    required = [p.name for p in parameters if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(required) > 1:
        raise ValueError(f"{option}: forward takes {len(required)} inputs ({', '.join(required)}); mpdesign feeds "
                         f"one tensor of --input-shape")
    training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(shape))
    except Exception as error:  # noqa: BLE001 - the user's forward: name what it raised
        detail = " ".join(str(error).split())[:300]
        raise ValueError(f"{option}: a forward pass on one float tensor of shape {tuple(shape)} raised "
                         f"{type(error).__name__}: {detail} (mpdesign needs a model that takes one float tensor; "
                         f"integer inputs such as token ids are not supported)") from None
    finally:
        model.train(training)
    outputs = list(out) if isinstance(out, (tuple, list)) and not logits else [out]
    for value in outputs:
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            what = type(value).__name__ if not isinstance(value, torch.Tensor) else f"a {value.dtype} tensor"
            raise ValueError(f"{option}: forward returned {what}; mpdesign needs "
                             + ("one float tensor of logits" if logits else "a float tensor (or a tuple of them)"))
    if logits and (out.dim() != 2 or out.shape[0] != shape[0]):
        raise ValueError(f"{option}: forward returned shape {tuple(out.shape)}; pruning needs logits of shape "
                         f"(batch, classes), here ({shape[0]}, classes)")


def calibration_tensor(calibration: torch.Tensor | Iterable, limit: int | None = None) -> torch.Tensor:
    """Calibration inputs as one tensor: a tensor as it is, a dataset's samples stacked, or the
    inputs of a ``DataLoader``'s (or any iterable's) batches, ``(x, y)`` pairs or bare ``x``, up
    to ``limit`` samples."""
    if isinstance(calibration, torch.Tensor):
        return calibration if limit is None else calibration[:limit]
    if isinstance(calibration, TensorDataset):
        return calibration.tensors[0] if limit is None else calibration.tensors[0][:limit]
    if isinstance(calibration, Dataset):  # samples, not batches: stack them
        count = len(calibration) if limit is None else min(limit, len(calibration))
        samples = [calibration[i] for i in range(count)]
        return torch.stack([s[0] if isinstance(s, (tuple, list)) else s for s in samples])
    batches, seen = [], 0
    for batch in calibration:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"calibration: batches must be tensors or (inputs, targets) pairs, got {type(x).__name__}")
        batches.append(x)
        seen += len(x)
        if limit is not None and seen >= limit:
            break
    if not batches:
        raise ValueError("calibration: the data loader gave no batches")
    inputs = torch.cat(batches)
    return inputs if limit is None else inputs[:limit]


def count_macs(model: nn.Module, inputs: torch.Tensor, depth: int = 10 ** 6) -> tuple[int, dict[str, int]]:
    """MACs of one forward pass of ``inputs``, whole and per submodule (by its name in
    ``named_modules``, down to ``depth``), as torch's ``FlopCounterMode`` counts them (FLOPs / 2:
    convolutions, matrix products, attention; a linear layer on tokens once per token); in eval
    mode, without gradients, the model's mode restored. The one MAC counter for any module:
    ``inspect --model``, pruning's layer costs (:func:`designer.pruning.curves.layer_macs`) and
    channel pruning's recount (:func:`designer.pruning.groups.count_costs`)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False, depth=depth) as counter:
        model(inputs)
    model.train(was_training)
    root = type(model).__name__ + "."  # the counter's name for a submodule is root.name
    per_module = {name.removeprefix(root): sum(ops.values()) // 2 for name, ops in counter.get_flop_counts().items()
                  if name.startswith(root)}
    return counter.get_total_flops() // 2, per_module


def inspect_module(model: nn.Module, shape: tuple[int, ...], depth: int = 2) -> dict:
    """Parameters and MACs of a user's module, whole and per submodule down to ``depth``, on one
    forward pass of zeros at ``shape`` (:func:`count_macs`)."""
    total, macs = count_macs(model, torch.zeros(shape), depth)
    rows = [{"module": name, "type": type(module).__name__, "params": sum(p.numel() for p in module.parameters()),
             "macs": macs.get(name, 0)}
            for name, module in model.named_modules() if name and name.count(".") < depth]
    from designer.schemas import FORMAT_VERSION
    return {"format_version": FORMAT_VERSION, "model": type(model).__name__, "input_shape": list(shape),
            "params": sum(p.numel() for p in model.parameters()), "macs": total, "modules": rows}
