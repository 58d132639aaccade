r"""The smallest value every budget can take in a design space, exactly and at once.

Every cost a budget limits grows with every choice the space offers: MACs, parameters,
TinyNAS's FLOPs and model size, DeepMAD's layer count, the largest single-layer activation
footprint and the modelled latency (non-negative coefficients on MACs and bytes moved, plus
per-layer constants) are sums of terms that never shrink when a width, a bottleneck, a kernel
or a depth grows. So one design minimises all of them together:

(M1) the *narrowest* design: the narrowest stem, every stage at the narrowest output width
     (which also satisfies ``monotone``), the narrowest bottleneck the ratio allows for it,
     the smallest kernel and the least depth; the head is fixed.

Its recounted costs are the smallest each budget can be, *given every other cost budget*
(it meets any other cost budget that any design meets).

(M2) with several families, a stage's family is a choice too, and no one family need be the
     cheapest for every budget: each budget takes its own narrowest design, every stage of it
     in the family whose narrowest stage costs least *for that budget*. All stages have the
     same input and output widths, so a stage's costs do not depend on the other stages'
     families, and every budget is a sum (or, for the activation footprint, a maximum) of
     per-stage terms: choosing per stage is exact. A budget below its minimum is proven
infeasible before any solver runs, by arithmetic alone, so the verdict does not depend on how
fast the machine is. The effectiveness budget is the one rule this leaves out (it asks for
*wider*, shallower networks): when the narrowest design breaks it, the minima are still exact
for the space, and whether all budgets hold together is the MILP's question
(:mod:`designer.design.infeasible`).
"""

from __future__ import annotations

from dataclasses import dataclass

from designer.costs import count
from designer.design.problem import DesignError, DesignProblem, ceil_to
from designer.entropy import deepmad_scores
from designer.families import family as block_family
from designer.spec import NetworkSpec


@dataclass(frozen=True)
class Minimum:
    """One budget's smallest value in the space: the problem field, words for it, the value."""

    field: str
    label: str
    smallest: float
    limit: float

    @property
    def met(self) -> bool:
        return self.limit >= self.smallest * (1 - 1e-12)

    def text(self, name: str | None = None) -> str:
        """The sentence an error carries; ``name``: how it names the field (default: the field)."""
        value = f"{self.smallest:.4g}" if self.field == "max_latency_ms" else f"{round(self.smallest):,}"
        return (f"{name or self.field}: the {self.label} budget {self.limit:g} cannot be met: the smallest {self.label} any "
                f"design in the space can have is {value}")


def narrowest_design(problem: DesignProblem, families: list[str] | None = None) -> NetworkSpec:
    """(M1): the design every cost is smallest at, for one family; with ``families``, one name
    per stage (M2)."""
    step = problem.width_step
    stem = ceil_to(problem.stem_widths[0], step)
    out = ceil_to(problem.out_widths[0], step)
    names = families or [problem.family] * problem.n_stages
    stages = []
    for j, name in enumerate(names, start=1):
        blocks = block_family(name)
        stages.append((out, problem.btn_bounds(out, blocks)[0], min(problem.kernels_of(blocks)),
                       problem.stage_depth_bounds(j)[0], name))
    return problem.to_spec(stem, stages)


def _budget_values(problem: DesignProblem, spec: NetworkSpec) -> dict[str, tuple[str, float]]:
    """Every budget the problem sets: (words for it, ``spec``'s recounted value)."""
    costs = count(spec, problem.bytes_per_element)
    compute, size = costs.budget(problem.counting)
    values = {"max_macs": (problem.budget_names[0], compute), "max_params": (problem.budget_names[1], size),
              "max_layers": ("layers", deepmad_scores(spec, problem.stage_alpha).layers),
              "max_activation_bytes": ("activation bytes", costs.max_activation_bytes)}
    if problem.max_latency_ms is not None:
        values["max_latency_ms"] = ("modelled milliseconds", problem.latency_model.predict(spec))
    return {field: value for field, value in values.items() if getattr(problem, field) is not None}


def _stage_families(problem: DesignProblem) -> dict[str, list[str]]:
    """(M2) per budget, per stage, the family whose narrowest stage costs least for it: each
    stage tried in every family with the others fixed (the other stages' terms do not change),
    one recount per (stage, family). The activation footprint is a maximum, so it is compared
    on the stage's own layers."""
    base = [problem.family] * problem.n_stages
    chosen: dict[str, list[str]] = {}
    for j in range(problem.n_stages):
        values = {}  # family -> the budgets' values with stage j of that family
        for blocks in problem.block_families:
            spec = narrowest_design(problem, base[:j] + [blocks.name] + base[j + 1:])
            values[blocks.name] = {field: value for field, (_, value) in _budget_values(problem, spec).items()}
            if "max_activation_bytes" in values[blocks.name]:
                values[blocks.name]["max_activation_bytes"] = max(
                    layer.activation_bytes(problem.bytes_per_element)
                    for layer in count(spec).layers if layer.name.startswith(f"stages.{j}."))
        for field in values[problem.family]:
            chosen.setdefault(field, []).append(min(values, key=lambda name: values[name][field]))
    return chosen


def minima(problem: DesignProblem) -> list[Minimum]:
    """Every budget the problem sets, with its smallest value in the space (M1, M2)."""
    values = _budget_values(problem, narrowest_design(problem))
    if problem.mixed:
        values = {field: _budget_values(problem, narrowest_design(problem, names))[field]
                  for field, names in _stage_families(problem).items()}
    return [Minimum(field, label, float(value), float(getattr(problem, field)))
            for field, (label, value) in values.items()]


def check_minima(problem: DesignProblem) -> None:
    """Raise :class:`DesignError` naming every budget below its smallest value, each with that value."""
    broken = [m.text(problem.label(m.field)) for m in minima(problem) if not m.met]
    if broken:
        raise DesignError("; ".join(broken))


def check_budgets(problem: DesignProblem) -> None:
    """Budgets no design can meet, proven by arithmetic before any solve (a DesignError naming
    each with its smallest value): the stem's own footprint and effectiveness (which no
    width of the stages can change), and every cost budget below its minimum (M1)."""
    _check_fixed_parts(problem)
    check_minima(problem)


def _check_fixed_parts(problem: DesignProblem) -> None:
    """Budgets the stem alone already breaks, with the smallest value any design can have."""
    if problem.max_activation_bytes is not None:
        resolution, after = problem.resolution, problem.resolutions()[0]
        narrowest = ceil_to(problem.stem_widths[0], problem.width_step)
        stem_bytes = (problem.in_channels * resolution ** 2 + narrowest * after ** 2) * problem.bytes_per_element
        if stem_bytes > problem.max_activation_bytes:
            raise DesignError(f"{problem.label('max_activation_bytes')}: {problem.max_activation_bytes:g} is below the stem conv's own "
                              f"footprint at its narrowest width ({narrowest} channels): the smallest feasible "
                              f"budget is at least {stem_bytes:,} bytes")
    if problem.effectiveness is not None:
        rho_stem = 1 / (problem.in_channels * problem.stem_kernel ** 2)
        if rho_stem > problem.effectiveness:
            raise DesignError(f"{problem.label('effectiveness')}: the stem alone has rho {rho_stem:.4f} > {problem.effectiveness}; "
                              f"the smallest feasible effectiveness budget is {rho_stem:.4f}")
