"""Where a graph to map comes from: a graph file (Checkmate node-link, HMCOS/COSMA, our graph
JSON, a spec JSON), a checkpoint, a saved ``ExportedProgram`` (``.pt2``), or a user's module
(``PATH.py:FACTORY`` with an input shape); forward only, or one training step.

:class:`Source` is the request, checked whole by :meth:`Source.check` before anything is read,
captured or solved; :meth:`Source.load` turns it into a :class:`TensorGraph`. torch is imported
only for the sources that need it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from designer import checks
from designer.mapping.graph import TensorGraph, load_graph


@dataclass
class Source:
    """A graph file (``path``) or a module (``model``, ``input_shape`` as typed: ``1,3,224,224``
    or ``3,224,224``). ``trust``: a ``.pt2`` holds pickles, which can run code when loaded, and
    is read only when the user says it may be."""

    path: Path | None = None
    model: str | None = None
    input_shape: str | None = None
    training: bool = False
    weights: bool = False
    bytes_per_element: int = 1
    fuse: bool = True
    trust: bool = False
    _factory: object = field(default=None, init=False, repr=False)  # found by check(): the user's file runs once

    def check(self) -> None:
        """Every field, naming the command line's options; nothing is loaded or captured."""
        checks.integer(self.bytes_per_element, "--bytes-per-element", minimum=1)
        if (self.path is None) == (self.model is None):
            raise ValueError("give a graph file or --model PATH.py:FACTORY (exactly one)")
        if self.path is not None:
            checks.readable_file(self.path, "graph")
            if self.path.suffix == ".pt2" and not self.trust:
                raise ValueError(f"--trust: {self.path} is a .pt2 archive, whose pickled parts can run code when "
                                 f"loaded; give --trust if you trust where it came from")
            if self.training and self.path.suffix != ".pt":
                raise ValueError("--training: needs a model (--model or a checkpoint); a graph file is what it is")
            return
        from designer.user_model import load_factory, parse_input_shape
        if self.input_shape is None:
            raise ValueError("--input-shape: needed with --model, e.g. 1,3,224,224")
        parse_input_shape(self.input_shape)
        self._factory = load_factory(self.model)

    def load(self) -> TensorGraph:
        """The tensor graph: read, or captured with ``torch.export`` (:mod:`designer.mapping.importer`)."""
        if self.model is not None:
            return self._capture_user_model()
        if self.path.suffix == ".pt2":
            return self._exported()
        if self.path.suffix == ".pt":
            return self._checkpoint()
        return load_graph(self.path, include_weights=self.weights, bytes_per_element=self.bytes_per_element)

    def _capture(self, module, example, name: str) -> TensorGraph:
        from designer.mapping.graph import from_torch
        from designer.mapping.importer import training_graph
        capture = training_graph if self.training else from_torch
        return capture(module, example, self.bytes_per_element, self.weights,
                       name + (" (training)" if self.training else ""), self.fuse)

    def _capture_user_model(self) -> TensorGraph:
        import torch

        from designer.user_model import build_user_model, check_forward, parse_input_shape
        shape = parse_input_shape(self.input_shape)
        module = build_user_model(self.model, factory=self._factory)
        check_forward(module, shape)  # one float tensor in, tensors out: before any capture
        return self._capture(module, torch.zeros(shape), self.model.rpartition(":")[2])

    def _checkpoint(self) -> TensorGraph:
        from designer.checkpoint import load_checkpoint
        from designer.network import example_input
        model, _ = load_checkpoint(self.path)
        return self._capture(model, example_input(model.spec, 1), model.spec.name or self.path.stem)

    def _exported(self) -> TensorGraph:
        import torch

        from designer.mapping.importer import from_exported
        try:
            program = torch.export.load(self.path)
        except Exception as error:  # noqa: BLE001 - torch's own load errors
            raise ValueError(f"{self.path}: not an ExportedProgram torch can load ({type(error).__name__})") from None
        return from_exported(program, self.bytes_per_element, self.weights, self.path.stem, self.fuse)
