"""Checkpoints: the spec JSON and the state dict in one ``torch.save`` file, plus metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from designer.network import Network, build
from designer.spec import NetworkSpec


def save_checkpoint(model: Network, path: str | Path, **metadata: Any) -> None:
    torch.save({"spec": model.spec.to_dict(), "state_dict": model.state_dict(), "metadata": metadata}, path)


def load_checkpoint(path: str | Path) -> tuple[Network, dict[str, Any]]:
    """The network (in eval mode) and the checkpoint's metadata."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or "spec" not in data or "state_dict" not in data:
        raise ValueError(f"{path}: not an mpdesign checkpoint (needs 'spec' and 'state_dict')")
    model = build(NetworkSpec.from_dict(data["spec"]))
    model.load_state_dict(data["state_dict"])
    return model.eval(), data.get("metadata", {})
