"""A channel-pruned model users keep: their own module class, with the shrunk layers.

:func:`save_pruned` writes the state dict and the *structure* (per conv, linear and norm layer
its channel counts and groups); :func:`load_pruned` builds the user's module from its factory,
resizes those layers to the recorded structure and loads the weights: the user's class, in
train or eval mode, ready to fine-tune further (an ``ExportedProgram``'s ``.module()`` refuses
``.train()``/``.eval()`` in torch 2.13). This is Torch-Pruning's convention (rebuild, then
re-apply what pruning changed), recorded as shapes rather than as a history of pruning steps.
The file holds tensors, numbers and names only and is read with ``weights_only=True``: it never
runs code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from designer import files

FORMAT = "mpdesign-pruned"


def structure(model: nn.Module) -> dict[str, dict]:
    """Per conv, linear and norm layer, what pruning can change about its shape."""
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            found[name] = {"kind": "conv2d", "in_channels": module.in_channels, "out_channels": module.out_channels,
                           "groups": module.groups}
        elif isinstance(module, nn.Linear):
            found[name] = {"kind": "linear", "in_features": module.in_features, "out_features": module.out_features}
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            found[name] = {"kind": "batchnorm", "num_features": module.num_features}
        elif isinstance(module, nn.LayerNorm):
            found[name] = {"kind": "layernorm", "normalized_shape": list(module.normalized_shape)}
    return found


def save_pruned(model: nn.Module, path: str | Path, metadata: dict | None = None) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with files.atomic_path(path) as temporary:
        torch.save({"format": FORMAT, "structure": structure(model), "state_dict": state,
                    "metadata": metadata or {}}, temporary)


def _resize(module: nn.Module, shape: dict) -> None:
    def parameter(*size: int) -> nn.Parameter:
        return nn.Parameter(torch.empty(size))

    kind = shape["kind"]
    if kind == "conv2d":
        module.in_channels, module.out_channels, module.groups = \
            shape["in_channels"], shape["out_channels"], shape["groups"]
        module.weight = parameter(module.out_channels, module.in_channels // module.groups, *module.kernel_size)
        if module.bias is not None:
            module.bias = parameter(module.out_channels)
    elif kind == "linear":
        module.in_features, module.out_features = shape["in_features"], shape["out_features"]
        module.weight = parameter(module.out_features, module.in_features)
        if module.bias is not None:
            module.bias = parameter(module.out_features)
    elif kind == "batchnorm":
        n = module.num_features = shape["num_features"]
        if module.affine:
            module.weight, module.bias = parameter(n), parameter(n)
        if module.track_running_stats:
            module.running_mean, module.running_var = torch.zeros(n), torch.ones(n)
    elif kind == "layernorm":
        module.normalized_shape = tuple(shape["normalized_shape"])
        if module.elementwise_affine:
            module.weight = parameter(*module.normalized_shape)
            module.bias = parameter(*module.normalized_shape) if module.bias is not None else None


def load_pruned(factory: str | Callable[[], nn.Module], path: str | Path) -> nn.Module:
    """The user's module (``factory``: ``PATH.py:FACTORY``, ``package.module:factory`` or a
    callable) with the pruned structure and weights of ``path`` (written by :func:`save_pruned`)."""
    from designer.user_model import build_user_model
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pruned-model file (written by `prune --mode channels --model ...`)")
    model = factory() if callable(factory) else build_user_model(factory)
    for name, shape in data["structure"].items():
        _resize(model.get_submodule(name), shape)
    model.load_state_dict(data["state_dict"])
    return model
