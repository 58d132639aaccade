"""Mapping a DNN graph onto a scratchpad (COSMA): the front door.

    from designer.mapping import load, solve, MappingProblem
    graph = load("models.py:resnet18", input_shape="3,224,224", training=True)
    result = solve(MappingProblem(graph, scratchpad="M_H", strategy="cpsat", objective="dram"))

Names are imported on first use (PEP 562), so ``import designer.mapping.core.graph`` stays free of
the solvers and torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"load": "sources", "Source": "sources", "MappingProblem": "problem", "MappingError": "problem",
            "Budgets": "problem", "budgets": "problem", "MappingResult": "result", "Mapping": "core.io",
            "TensorGraph": "core.graph", "GraphError": "core.graph", "STRATEGIES": "strategies",
            "OBJECTIVES": "core.objective", "solve": "stages"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'designer.mapping' has no attribute {name!r}")
    return getattr(importlib.import_module(f"designer.mapping.{_EXPORTS[name]}"), name)
