"""Block families: one module each, the whole truth about that family's costs (see
:mod:`designer.families.base` for the protocol), its torch side beside it in
``<family>_blocks.py`` (loaded when a network is built, so counting needs no torch). A new
family is one new module, its blocks module and one line in :data:`REGISTRY` below."""

from __future__ import annotations

from designer.families import basic, bottleneck, fused, inverted
from designer.families.base import BlockFamily, FamilyDefaults, Layer

REGISTRY: dict[str, BlockFamily] = {module.FAMILY.name: module.FAMILY for module in (
    basic,
    bottleneck,
    inverted,
    fused,
)}
NAMES: tuple[str, ...] = tuple(REGISTRY)


def family(name: str | BlockFamily) -> BlockFamily:
    """The family called ``name`` (a family given itself is returned as is: the design
    problem resolves its family once), or a ValueError listing the known ones."""
    if isinstance(name, BlockFamily):
        return name
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"family: must be one of {', '.join(NAMES)}, got {name!r}") from None


__all__ = ["BlockFamily", "FamilyDefaults", "Layer", "NAMES", "REGISTRY", "family"]
