"""Network specifications: plain dataclasses that round-trip through JSON.

A :class:`NetworkSpec` describes a CNN as a stem conv, a list of stages of identical
blocks, an optional 1x1 head conv, global average pooling and a linear classifier.
The exact layer structure of each block family is documented in
:mod:`designer.network`, which materialises a spec; :mod:`designer.costs` counts it.

JSON format (``NetworkSpec.to_dict``)::

    {"resolution": 224, "in_channels": 3, "num_classes": 1000,
     "stem": {"out": 32, "k": 3, "stride": 2},
     "stages": [{"family": "bottleneck", "out": 128, "btn": 40, "k": 5, "L": 1, "stride": 2}, ...],
     "head": null, "name": "deepmad-r50"}

Every problem is reported by :class:`SpecError` naming the field, e.g.
``stages[2].btn: must be a positive integer, got 0``.
"""

from __future__ import annotations

import ast
import json
from dataclasses import MISSING, asdict, dataclass
from pathlib import Path
from typing import Any

from designer import files
from designer.errors import Error
from designer.families import NAMES as FAMILIES, REGISTRY

STRIDES = (1, 2)

# TinyNAS / DeepMAD block classes and the family each one is.
TINYNAS_CLASSES = {f.tinynas_class: name for name, f in REGISTRY.items() if f.tinynas_class is not None}
TINYNAS_CONV = "ConvKXBNRELU"


class SpecError(Error, ValueError):
    """A network spec (or a file holding one) is invalid; the message names the field."""


@dataclass
class Stem:
    """The first conv: ``k x k``, ``stride``, ``in_channels -> out``, BN, ReLU."""

    out: int
    k: int = 3
    stride: int = 2


@dataclass
class Stage:
    """``L`` blocks of one family; the first takes the stage input and ``stride``.

    ``btn`` is the inner width: the bottleneck width (``bottleneck``), the expanded
    width (``inverted``) or the width between the two convs (``basic``).
    """

    family: str
    out: int
    btn: int
    k: int
    L: int
    stride: int = 1


@dataclass
class NetworkSpec:
    resolution: int
    stem: Stem
    stages: list[Stage]
    in_channels: int = 3
    num_classes: int = 1000
    head: int | None = None
    name: str = ""

    # ---- construction -------------------------------------------------------------
    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _positive_int(self.resolution, "resolution")
        _positive_int(self.in_channels, "in_channels")
        _positive_int(self.num_classes, "num_classes")
        if not isinstance(self.stem, Stem):
            raise SpecError(f"stem: expected a Stem, got {type(self.stem).__name__}")
        _positive_int(self.stem.out, "stem.out")
        _kernel(self.stem.k, "stem.k")
        _stride(self.stem.stride, "stem.stride")
        if not isinstance(self.stages, list) or not self.stages:
            raise SpecError("stages: must be a non-empty list of stages")
        for i, stage in enumerate(self.stages):
            where = f"stages[{i}]"
            if not isinstance(stage, Stage):
                raise SpecError(f"{where}: expected a Stage, got {type(stage).__name__}")
            if stage.family not in FAMILIES:
                raise SpecError(f"{where}.family: must be one of {', '.join(FAMILIES)}, got {stage.family!r}")
            for name in ("out", "btn", "L"):
                _positive_int(getattr(stage, name), f"{where}.{name}")
            _kernel(stage.k, f"{where}.k")
            _stride(stage.stride, f"{where}.stride")
        if self.head is not None:
            _positive_int(self.head, "head")
        if not isinstance(self.name, str):
            raise SpecError(f"name: must be a string, got {self.name!r}")
        if not self.name.isprintable():  # a terminal escape in a name would reach the user's terminal
            raise SpecError(f"name: must be printable text (no control characters), got {self.name!r}")
        if self.final_resolution < 1:
            raise SpecError(
                f"resolution: {self.resolution} is too small for a total stride of {self.total_stride}"
            )

    # ---- derived figures ---------------------------------------------------------------
    @property
    def total_stride(self) -> int:
        total = self.stem.stride
        for stage in self.stages:
            total *= stage.stride
        return total

    @property
    def final_resolution(self) -> int:
        r = self.resolution
        for s in [self.stem.stride] + [st.stride for st in self.stages]:
            r = -(-r // s)  # a padded k x k conv gives ceil(r / stride)
        return r

    @property
    def feature_channels(self) -> int:
        """Channels entering the classifier."""
        return self.head if self.head is not None else self.stages[-1].out

    def replace(self, **changes: Any) -> NetworkSpec:
        """A validated copy with the given top-level fields changed (None values are ignored)."""
        return NetworkSpec.from_dict({**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}})

    # ---- serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSpec:
        if not isinstance(data, dict):
            raise SpecError(f"spec: expected a JSON object, got {type(data).__name__}")
        known = {"resolution", "stem", "stages", "in_channels", "num_classes", "head", "name"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"spec: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for required in ("resolution", "stem", "stages"):
            if required not in data:
                raise SpecError(f"{required}: missing")
        stem = _build(Stem, data["stem"], "stem")
        if not isinstance(data["stages"], list):
            raise SpecError("stages: must be a list")
        stages = [_build(Stage, s, f"stages[{i}]") for i, s in enumerate(data["stages"])]
        rest = {k: data[k] for k in ("in_channels", "num_classes", "head", "name") if k in data}
        return cls(resolution=data["resolution"], stem=stem, stages=stages, **rest)

    @classmethod
    def from_json(cls, text: str) -> NetworkSpec:
        from designer.checks import parse_json
        try:
            data = parse_json(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"spec: not valid JSON ({err})") from None
        except ValueError as err:  # a key twice, NaN
            raise SpecError(f"spec: {err}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        files.write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path, resolution: int | None = None, num_classes: int | None = None) -> NetworkSpec:
        """Read a spec JSON file, or a TinyNAS/DeepMAD structure file.

        ``resolution`` and ``num_classes`` are needed for TinyNAS files (which carry
        neither; defaults 224 and 1000) and override nothing in a spec JSON file
        unless given.
        """
        from designer.checks import parse_json, read_text
        path = Path(path)
        try:
            text = read_text(path, "spec")
        except ValueError as error:
            raise SpecError(str(error)) from None
        try:
            data = parse_json(text)
        except json.JSONDecodeError:
            data = None
        except RecursionError:
            raise SpecError(f"spec: {path}: JSON nested too deeply to be a spec") from None
        except ValueError as error:  # a key twice, NaN
            raise SpecError(f"spec: {path}: {error}") from None
        if isinstance(data, dict) and not {"best_structures", "structure_info"} & set(data):
            # a spec JSON object (missing fields are named by from_dict), not a TinyNAS file
            return cls.from_dict(data).replace(resolution=resolution, num_classes=num_classes)
        return from_tinynas(text, resolution=resolution or 224, num_classes=num_classes or 1000,
                            name=path.stem)


# ---- TinyNAS / DeepMAD structure files ----------------------------------------------
def from_tinynas(text_or_blocks: str | list | dict, resolution: int = 224, num_classes: int = 1000,
                 name: str = "") -> NetworkSpec:
    """Convert a TinyNAS structure (``{'best_structures': [[block, ...]], ...}``, or the
    block list itself) into a :class:`NetworkSpec`.

    The first block must be a ``ConvKXBNRELU`` (the stem); a ``ConvKXBNRELU`` with k=1
    and stride 1 after the stages becomes the head conv.
    """
    data = text_or_blocks
    if isinstance(data, str):
        try:
            data = ast.literal_eval(data.strip())
        except (ValueError, SyntaxError) as err:
            raise SpecError(f"structure: neither spec JSON nor a TinyNAS Python-literal structure ({err})") from None
    if isinstance(data, dict):
        if "best_structures" in data:
            data = data["best_structures"]
            if not isinstance(data, list) or not data:
                raise SpecError("best_structures: must be a non-empty list")
            data = data[0]
        elif "structure_info" in data:
            data = data["structure_info"]
        else:
            raise SpecError("structure: a dict must have the key 'best_structures' (or 'structure_info')")
    if not isinstance(data, list) or not data:
        raise SpecError("structure: expected a non-empty list of blocks")
    blocks = list(data)
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or "class" not in block:
            raise SpecError(f"block[{i}]: expected a dict with a 'class' key, got {block!r}")
    first = blocks[0]
    if first["class"] != TINYNAS_CONV:
        raise SpecError(f"block[0].class: the stem must be {TINYNAS_CONV}, got {first['class']!r}")
    stem = Stem(out=_field(first, "out", 0), k=_field(first, "k", 0), stride=_field(first, "s", 0))
    in_channels = _field(first, "in", 0)
    head = None
    last = blocks[-1]
    if len(blocks) > 2 and last["class"] == TINYNAS_CONV:
        if _field(last, "k", len(blocks) - 1) != 1 or _field(last, "s", len(blocks) - 1) != 1:
            raise SpecError(f"block[{len(blocks) - 1}]: a trailing {TINYNAS_CONV} must be a 1x1, stride-1 head conv")
        head = _field(last, "out", len(blocks) - 1)
        blocks = blocks[:-1]
    stages = []
    channels = stem.out
    for i, block in enumerate(blocks[1:], start=1):
        cls = block["class"]
        if cls not in TINYNAS_CLASSES:
            raise SpecError(f"block[{i}].class: unsupported {cls!r}; supported: "
                            f"{', '.join([TINYNAS_CONV, *TINYNAS_CLASSES])} ({TINYNAS_CONV} only as stem or 1x1 head)")
        if _field(block, "in", i) != channels:
            raise SpecError(f"block[{i}].in: {block['in']} does not match the previous block's out ({channels})")
        out = _field(block, "out", i)
        stages.append(Stage(family=TINYNAS_CLASSES[cls], out=out, btn=_field(block, "btn", i),
                            k=_field(block, "k", i), L=_field(block, "L", i), stride=_field(block, "s", i)))
        channels = out
    if head is not None and _field(last, "in", len(data) - 1) != channels:
        raise SpecError(f"head: its 'in' ({last['in']}) does not match the last stage's out ({channels})")
    return NetworkSpec(resolution=resolution, stem=stem, stages=stages, in_channels=in_channels,
                       num_classes=num_classes, head=head, name=name)


def to_tinynas(spec: NetworkSpec) -> list[dict[str, Any]]:
    """The spec as a TinyNAS ``structure_info`` block list."""
    family_class = {v: k for k, v in TINYNAS_CLASSES.items()}
    missing = sorted({st.family for st in spec.stages} - set(family_class))
    if missing:
        raise SpecError(f"TinyNAS has no block class for the {', '.join(missing)} family")
    blocks = [{"class": TINYNAS_CONV, "in": spec.in_channels, "out": spec.stem.out, "s": spec.stem.stride,
               "k": spec.stem.k}]
    channels = spec.stem.out
    for st in spec.stages:
        blocks.append({"class": family_class[st.family], "in": channels, "out": st.out, "s": st.stride,
                       "k": st.k, "L": st.L, "btn": st.btn})
        channels = st.out
    if spec.head is not None:
        blocks.append({"class": TINYNAS_CONV, "in": channels, "out": spec.head, "s": 1, "k": 1})
    return blocks


# ---- validation helpers -----------------------------------------------------------------
def _field(block: dict, key: str, index: int) -> Any:
    if key not in block:
        raise SpecError(f"block[{index}]: missing key {key!r} ({block['class']})")
    return block[key]


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected an object, got {data!r}")
    names = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - names)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    try:
        return cls(**data)
    except TypeError:
        missing = sorted(n for n, f in cls.__dataclass_fields__.items()
                         if n not in data and f.default is MISSING and f.default_factory is MISSING)
        raise SpecError(f"{where}: missing field(s) {', '.join(missing)}") from None


def _positive_int(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where}: must be a positive integer, got {value!r}")


def _kernel(value: Any, where: str) -> None:
    _positive_int(value, where)
    if value % 2 == 0:
        raise SpecError(f"{where}: kernel size must be odd (same padding), got {value}")


def _stride(value: Any, where: str) -> None:
    if value not in STRIDES or isinstance(value, bool):
        raise SpecError(f"{where}: stride must be 1 or 2, got {value!r}")


__all__ = ["FAMILIES", "NetworkSpec", "SpecError", "Stage", "Stem", "from_tinynas", "to_tinynas"]
