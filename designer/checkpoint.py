"""Checkpoints: the spec JSON and the state dict in one ``torch.save`` file, plus metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from designer import files
from designer.network import Network, build
from designer.spec import NetworkSpec, SpecError


def save_checkpoint(model: Network, path: str | Path, **metadata: Any) -> None:
    """The spec, the weights (moved to the CPU, so the file loads anywhere) and ``metadata``."""
    state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    files.save_torch({"spec": model.spec.to_dict(), "state_dict": state, "metadata": metadata}, path)


def resolve_device(device: str | torch.device = "auto", option: str = "device") -> torch.device:
    """``auto`` (CUDA when torch sees one), ``cpu`` or ``cuda``; a clear error for anything else
    or for ``cuda`` without a CUDA device, naming ``option`` (the command line's ``--device``)."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"{option}: must be auto, cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{option}: cuda was asked for but torch sees no CUDA device")
    return torch.device(name)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[Network, dict[str, Any]]:
    """The network (in eval mode, on ``device``: a checkpoint saved on either device loads on
    either) and the checkpoint's metadata."""
    target = resolve_device(device)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint")
    try:
        data = torch.load(path, map_location=target, weights_only=True)
    except Exception as error:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError, ...)
        raise ValueError(f"{path}: not a checkpoint torch can read ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else 'no detail'})") from None
    if not isinstance(data, dict) or "spec" not in data or "state_dict" not in data:
        raise ValueError(f"{path}: not an mpdesign checkpoint (needs 'spec' and 'state_dict')")
    try:
        model = build(NetworkSpec.from_dict(data["spec"]))
    except SpecError as error:
        raise ValueError(f"{path}: the checkpoint's spec is invalid: {error}") from None
    try:
        result = model.load_state_dict(data["state_dict"], strict=False)
    except RuntimeError as error:  # shapes that differ from the spec's
        detail = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line), str(error))
        raise ValueError(f"{path}: the weights do not match the checkpoint's spec ({detail})") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{path}: the weights do not match the checkpoint's spec (missing: "
                         f"{', '.join(result.missing_keys[:3]) or 'none'}; unexpected: "
                         f"{', '.join(result.unexpected_keys[:3]) or 'none'})")
    metadata = data.get("metadata", {})
    return model.to(target).eval(), metadata if isinstance(metadata, dict) else {}
