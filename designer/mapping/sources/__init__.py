"""Where a graph to map comes from, and :func:`load`, the one way in for all of them.

A graph file (Checkmate node-link, HMCOS/COSMA, our graph JSON, a network spec JSON), a
checkpoint (``.pt``), a saved ``ExportedProgram`` (``.pt2``), a user's module by reference
(``PATH.py:FACTORY`` or ``package.module:factory``) or a module object, each with an input
shape; forward only, or one training step (``training``).

    graph = load("resnet.json")                                  # a file
    graph = load("models.py:resnet18", input_shape="3,224,224")  # a factory
    graph = load(my_module, input_shape=(1, 3, 224, 224), training=True, weights=True)

:class:`Source` is the request, checked whole by :meth:`Source.check` before anything is read,
captured or solved (the CLI checks it with its other options); :meth:`Source.load` turns it
into a :class:`TensorGraph`. torch is imported only for the sources that need it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from designer import checks
from designer.trust import check_trust_value, require_trust
from designer.mapping.core.graph import GraphError, TensorGraph, from_hmcos, from_node_link


@dataclass
class Source:
    """A graph file (``path``), a module reference (``model``) or a module object (``module``),
    the last two with ``input_shape`` (``1,3,224,224`` or ``3,224,224``, as typed, or a tuple).
    ``trust``: a ``.pt2`` holds pickles, which can run code when loaded, and is read only when
    the user says it may be."""

    path: Path | None = None
    model: str | None = None
    input_shape: str | tuple[int, ...] | None = None
    training: bool = False
    weights: bool = False
    bytes_per_element: int = 1
    fuse: bool = True
    trust: bool = False
    module: Any = None
    name: str | None = None  # the graph's name (default: the file's, the factory's or the module class's)
    _factory: object = field(default=None, init=False, repr=False)  # found by check(): the user's file runs once

    def check(self) -> None:
        """Every field, naming the command line's options; nothing is loaded or captured."""
        checks.integer(self.bytes_per_element, "--bytes-per-element", minimum=1)
        check_trust_value(self.trust)
        if sum(x is not None for x in (self.path, self.model, self.module)) != 1:
            raise ValueError("give a graph file or --model PATH.py:FACTORY (exactly one)")
        if self.path is not None:
            self.path = Path(self.path)
            checks.readable_file(self.path, "graph")
            if self.path.suffix == ".pt2":
                require_trust(self.trust, self.path)
            if self.training and self.path.suffix != ".pt":
                raise ValueError("--training: needs a model (--model or a checkpoint); a graph file is what it is")
            return
        from designer.user_model import load_factory, parse_input_shape
        if self.input_shape is None:
            raise ValueError("--input-shape: needed with --model, e.g. 1,3,224,224")
        if not isinstance(self.input_shape, str):
            self.input_shape = ",".join(map(str, self.input_shape))
        parse_input_shape(self.input_shape)
        if self.model is not None:
            self._factory = load_factory(self.model)

    def load(self) -> TensorGraph:
        """The tensor graph: read, or captured with ``torch.export`` (:mod:`designer.mapping.sources.importer`)."""
        if self.model is not None or self.module is not None:
            return self._capture_user_model()
        if self.path.suffix == ".pt2":
            return self._exported()
        if self.path.suffix == ".pt":
            return self._checkpoint()
        graph = load_graph(self.path, include_weights=self.weights, bytes_per_element=self.bytes_per_element)
        graph.name = self.name or graph.name
        return graph

    def export(self):
        """The model's decomposed ``ExportedProgram`` and a random example of its input (fixed
        seed), for tiling and its numerical check: models only, forward only."""
        import torch

        from designer.mapping.sources.importer import decomposed, export
        if self.training:
            raise ValueError("--tiling: forward (inference) graphs only; drop --training")
        if self.path is not None and self.path.suffix not in (".pt", ".pt2"):
            raise ValueError("--tiling: needs a model (--model, a checkpoint or a .pt2): a graph file has no layers "
                             "to tile")
        generator = torch.Generator().manual_seed(0)
        if self.path is not None and self.path.suffix == ".pt2":
            program = decomposed(self._loaded_program())
            shape = next(s.arg for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT")
            value = next(n for n in program.graph.nodes if n.name == shape.name).meta["val"]
            return program, torch.randn(tuple(value.shape), generator=generator)
        module, example, _ = self._checkpoint_module() if self.path is not None else self._user_module()
        example = torch.randn(tuple(example.shape), generator=generator)
        return export(module, example), example

    def _capture(self, module, example, name: str) -> TensorGraph:
        from designer.mapping.sources.importer import from_torch, training_graph
        capture = training_graph if self.training else from_torch
        name = self.name or name
        return capture(module, example, self.bytes_per_element, self.weights,
                       name + (" (training)" if self.training else ""), self.fuse)

    def _user_module(self):
        """The user's module (built from its factory, or given), an example input, its name;
        checked to take one float tensor and return tensors, before any capture."""
        import torch

        from designer.user_model import build_user_model, check_forward, parse_input_shape
        shape = parse_input_shape(self.input_shape)
        if self.module is not None:
            module, name = self.module, type(self.module).__name__
        else:
            module, name = build_user_model(self.model, factory=self._factory), self.model.rpartition(":")[2]
        check_forward(module, shape)
        return module, torch.zeros(shape), name

    def _checkpoint_module(self):
        """The checkpoint's network, an example input at its resolution, its name."""
        from designer.checkpoint import load_checkpoint
        from designer.network import example_input
        model, _ = load_checkpoint(self.path)
        return model, example_input(model.spec, 1), model.spec.name or self.path.stem

    def _loaded_program(self):
        import torch
        require_trust(self.trust, self.path)  # here, where the file is opened: load() need not call check()
        try:
            return torch.export.load(self.path)
        except Exception as error:  # noqa: BLE001 - torch's own load errors
            raise ValueError(f"{self.path}: not an ExportedProgram torch can load ({type(error).__name__})") from None

    def _capture_user_model(self) -> TensorGraph:
        return self._capture(*self._user_module())

    def _checkpoint(self) -> TensorGraph:
        return self._capture(*self._checkpoint_module())

    def _exported(self) -> TensorGraph:
        from designer.mapping.sources.importer import from_exported
        return from_exported(self._loaded_program(), self.bytes_per_element, self.weights, self.path.stem, self.fuse)


def load(source: Source | str | Path | Any, **options: Any) -> TensorGraph:
    """The tensor graph of ``source``: a :class:`Source`, a file's path, a module reference
    (``PATH.py:FACTORY`` or ``package.module:factory``) or an ``nn.Module``; ``options`` are
    :class:`Source`'s fields (``input_shape``, ``training``, ``weights``, ``bytes_per_element``,
    ``fuse``, ``trust``). Checked whole before anything is read."""
    if not isinstance(source, Source):
        if isinstance(source, (str, Path)):
            text = str(source)
            is_reference = ":" in text and not Path(text).exists() and not isinstance(source, Path)
            key = "model" if is_reference else "path"
            source = Source(**{key: text if is_reference else Path(text)}, **options)
        else:
            source = Source(module=source, **options)
    source.check()
    return source.load()


def load_graph(path: str | Path, include_weights: bool = False, bytes_per_element: int = 1) -> TensorGraph:
    """A graph file (node-link, HMCOS, our graph JSON), or a network spec JSON built and
    captured at its resolution with batch size 1."""
    path = Path(path)
    if path.suffix == ".onnx":  # each tensor at its own element type's bytes (a quantized network's)
        from designer.mapping.sources.onnx import from_onnx
        return from_onnx(path, include_weights)
    try:
        data = checks.load_json(path, "graph")
    except ValueError as error:
        raise GraphError(str(error)) from None
    if not isinstance(data, dict):
        raise GraphError(f"{path}: expected a JSON object")
    try:
        if "nodes" in data:
            return from_node_link(data, path.stem, include_weights)
        if "dag" in data:
            return from_hmcos(data)
        if "operators" in data and "tensors" in data:
            return TensorGraph.from_dict(data)
    except (KeyError, TypeError, AttributeError) as error:  # a field of the wrong kind deep inside the file
        raise GraphError(f"{path}: malformed graph ({type(error).__name__}: {error})") from None
    if "stages" in data:
        from designer.mapping.sources.importer import from_torch
        from designer.network import build, example_input
        from designer.spec import NetworkSpec
        spec = NetworkSpec.from_dict(data)
        return from_torch(build(spec).eval(), example_input(spec, 1), bytes_per_element, include_weights,
                          spec.name or path.stem)
    raise GraphError(f"{path}: not a graph (node-link, HMCOS, mpdesign graph) nor a network spec JSON")
