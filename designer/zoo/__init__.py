"""Built-in specs: the released DeepMAD structures and a few reference networks.

``load("deepmad-r50")`` returns a :class:`~designer.spec.NetworkSpec`; ``names()`` lists them.
"""

from __future__ import annotations

from importlib import resources

from designer.spec import NetworkSpec, SpecError


def names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


def load(name: str) -> NetworkSpec:
    if name not in names():
        raise SpecError(f"no built-in spec {name!r}; built-in specs: {', '.join(names())}")
    return NetworkSpec.from_json(resources.files(__name__).joinpath(f"{name}.json").read_text())
