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
from typing import Any

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
    files.save_torch({"format": FORMAT, "structure": structure(model), "state_dict": state,
                      "metadata": metadata or {}}, path)


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


KINDS = {"conv2d": nn.Conv2d, "linear": nn.Linear, "batchnorm": nn.modules.batchnorm._BatchNorm,
         "layernorm": nn.LayerNorm}
COUNTS = {"conv2d": ("in_channels", "out_channels", "groups"), "linear": ("in_features", "out_features"),
          "batchnorm": ("num_features",), "layernorm": ()}


def _check_shape(model: nn.Module, name: Any, shape: Any) -> nn.Module:
    """The layer ``name`` of ``model``, if ``shape`` is a shape of it that pruning can give (the
    same kind, whole positive counts no larger than the factory's: pruning only removes)."""
    if not isinstance(name, str) or not isinstance(shape, dict) or shape.get("kind") not in KINDS:
        raise ValueError(f"the structure entry {str(name)[:60]!r} is not a layer shape")
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"the file prunes a layer {name!r} that this factory's model does not have") from None
    kind = shape["kind"]
    if not isinstance(module, KINDS[kind]):
        raise ValueError(f"{name}: the file records a {kind} layer, the factory's model has a "
                         f"{type(module).__name__}")
    for field in COUNTS[kind]:
        value, original = shape.get(field), getattr(module, field)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= original:
            raise ValueError(f"{name}.{field}: {value!r} is not a pruned size of the factory's {original} (a whole "
                             f"number from 1 to {original})")
    if kind == "conv2d" and (shape["in_channels"] % shape["groups"] or shape["out_channels"] % shape["groups"]):
        raise ValueError(f"{name}: {shape['groups']} groups do not divide its channels")
    if kind == "layernorm":
        given = shape.get("normalized_shape")
        if not isinstance(given, list) or len(given) != len(module.normalized_shape) or not all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= o
                for v, o in zip(given, module.normalized_shape)):
            raise ValueError(f"{name}.normalized_shape: {given!r} is not a pruned shape of the factory's "
                             f"{list(module.normalized_shape)}")
    return module


def _ties(model: nn.Module) -> list[list[tuple[str, str]]]:
    """The (module, attribute) places that hold one parameter, for each parameter held twice."""
    places: dict[int, list[tuple[str, str]]] = {}
    for module_name, module in model.named_modules():
        for attribute, parameter in module.named_parameters(recurse=False):
            places.setdefault(id(parameter), []).append((module_name, attribute))
    return [found for found in places.values() if len(found) > 1]


def load_pruned(factory: str | Callable[[], nn.Module], path: str | Path) -> nn.Module:
    """The user's module (``factory``: ``PATH.py:FACTORY``, ``package.module:factory`` or a
    callable) with the pruned structure and weights of ``path`` (written by :func:`save_pruned`).
    Every recorded shape is checked against the factory's model before anything is allocated;
    what does not fit is a ``ValueError`` naming it. Weights the factory ties stay tied."""
    from designer import checks
    from designer.user_model import build_user_model
    checks.readable_file(path, "path")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a file that is not its own
        raise ValueError(f"{path}: not a file torch can read ({type(error).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("structure"), dict) \
            or not isinstance(data.get("state_dict"), dict):
        raise ValueError(f"{path}: not a pruned-model file (written by `prune --mode channels --model ...`)")
    model = factory() if callable(factory) else build_user_model(factory)
    if not isinstance(model, nn.Module):
        raise ValueError(f"factory: returned a {type(model).__name__}, not an nn.Module")
    try:
        layers = [(_check_shape(model, name, shape), shape) for name, shape in data["structure"].items()]
    except ValueError as error:
        raise ValueError(f"{path}: does not fit this factory's model: {error}") from None
    ties = _ties(model)
    for module, shape in layers:
        _resize(module, shape)
    for places in ties:  # _resize gave each layer its own tensor: hold the first one everywhere again
        first = getattr(model.get_submodule(places[0][0]), places[0][1])
        for module_name, attribute in places[1:]:
            setattr(model.get_submodule(module_name), attribute, first)
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as error:
        detail = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), str(error))
        raise ValueError(f"{path}: its weights do not fit this factory's model ({detail[:200]})") from None
    return model
