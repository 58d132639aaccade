"""The DeepMAD design problem as data: family, stride pattern, search space, budgets.

A :class:`DesignProblem` is printable and round-trips through JSON; ``solve()`` (in
:mod:`designer.design.solve`) returns a :class:`DesignResult`, whose figures are recounted
from the returned spec by the backbone's cost model and scorer, never taken from the model.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from designer.costs import check_counting, count
from designer.entropy import check_alpha, deepmad_scores, default_alpha
from designer.errors import Error
from designer.families import REGISTRY, BlockFamily, family as block_family
from designer.schemas import FORMAT_VERSION
from designer.spec import NetworkSpec, Stage, Stem
from designer.units import parse_bytes
from solvers.result import SolveResult

MAX_WIDTH = 16384  # the widest stage or stem the space may hold (DeepMAD's space ends at 2048)
MAX_DEPTH = 64  # the most blocks per stage (DeepMAD's: 16)
OBJECTIVES = ("score", "penalised")  # what the design maximises (DesignProblem.objective)


class DesignError(Error, ValueError):
    """A design problem is invalid or infeasible; the message names the field or budget."""


def floor_to(value: float, step: int) -> int:
    return int(math.floor(value / step + 1e-9)) * step


def ceil_to(value: float, step: int) -> int:
    return int(math.ceil(value / step - 1e-9)) * step


def halving_strides(resolution: int, max_halvings: int = 4) -> list[int]:
    """Stem stride 1, a first stage at full resolution, then stages that halve the resolution
    down to about 2x2 (at most ``max_halvings``): a stride pattern for small images."""
    strides, r = [1, 1], resolution
    while r // 2 >= 2 and len(strides) < 2 + max_halvings:
        strides.append(2)
        r //= 2
    return strides


def default_strides(family_name: str, resolution: int) -> list[int]:
    """The family's stride pattern (ImageNet's, total stride 32) where it leaves a feature map of
    at least 4x4, else :func:`halving_strides` (at 32 x 32 the family's pattern would end at 1x1)."""
    strides = list(block_family(family_name).defaults.strides)
    return strides if resolution // math.prod(strides) >= 4 else halving_strides(resolution)


@dataclass
class DesignProblem:
    """Maximise the DeepMAD score over a discrete space of networks under budgets.

    Space: the stem width and every stage's ``out`` and ``btn`` on multiples of
    ``width_step``; ``btn`` between ``btn_ratio[0] * out`` (rounded down to the grid) and
    ``btn_ratio[1] * out`` (rounded up); ``k`` from ``kernels``; ``L`` from ``depths``
    (the first stage at most ``first_stage_max_depth``; with ``depth_ranges``, stage j within
    ``depth_ranges[j - 1]`` too: how the depth branching restricts a problem); optionally
    non-decreasing stage widths (``monotone``, DeepMAD's third guideline).

    Families: every stage is a block of ``family``, or with ``families`` (two or more names)
    of any of them, chosen per stage by the solver. ``family`` (default: the first of
    ``families``) gives the stride pattern; without ``btn_ratio`` / ``kernels`` each family
    keeps its own, and the default effectiveness budget is the strictest of the families'
    (so every design meets the rule each of its families would impose alone).

    Budgets (None: none): ``max_macs`` and ``max_params`` (as :func:`designer.costs.count`
    counts them; with ``counting="tinynas"``, TinyNAS's FLOPs and model size instead: see
    :mod:`designer.costs`), ``max_layers`` (DeepMAD's layer count), ``effectiveness`` (rho0: every
    stage end's rho at most this), ``max_activation_bytes`` (inputs + output of any single
    conv/linear layer, at ``bytes_per_element``), ``max_depth_spread`` (largest difference
    between two stage depths, counted over the stages the depth penalty uses).
    """

    family: str | None = None  # None: the first of ``families``, else "bottleneck"
    families: tuple[str, ...] | None = None  # the block families a stage may take (None: ``family`` only)
    resolution: int = 224
    in_channels: int = 3
    num_classes: int = 1000
    strides: list[int] | None = None  # the stem's, then one per stage (default: default_strides)
    head: int | None = None
    stem_kernel: int = 3
    width_step: int = 8
    stem_widths: tuple[int, int] = (16, 64)
    out_widths: tuple[int, int] = (16, 2048)
    btn_ratio: tuple[float, float] | None = None
    kernels: tuple[int, ...] | None = None
    depths: tuple[int, int] = (1, 16)
    first_stage_max_depth: int | None = 3
    depth_ranges: list[tuple[int, int]] | None = None  # per stage (lo, hi), within the rules above
    monotone: bool = True
    max_macs: float | None = None
    max_params: float | None = None
    max_layers: int | None = None
    effectiveness: float | str | None = "family"  # rho0; "family": the family's default (0.3 or 0.5); None: none
    max_activation_bytes: float | None = None
    bytes_per_element: int = 1
    max_depth_spread: int | None = None
    max_latency_ms: float | None = None  # modelled by latency_profile (designer.design.latency)
    latency_profile: dict[str, Any] | None = None
    alpha: list[float] | None = None
    objective: str = "score"  # "score": the DeepMAD score; "penalised": minus the authors' depth penalty
    counting: str = "mpdesign"  # what max_macs / max_params count: "mpdesign" (MACs, params) or "tinynas"
    name: str = "design"
    # what an error names for a field: the command line passes its options ({"max_macs": "--macs"}), so a
    # message is written with the caller's names, never rewritten after; not part of the problem's data
    labels: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def label(self, name: str) -> str:
        """How an error names field ``name`` (a subscript kept: ``out_widths[1]`` -> ``--widths[1]``)."""
        base, bracket, rest = name.partition("[")
        return self.labels.get(base, base) + bracket + rest

    def __post_init__(self) -> None:
        names = self._resolve_families()
        # resolved once: the cost models read them for every configuration
        self._blocks = REGISTRY[self.family]
        self._families = tuple(REGISTRY[name] for name in names)
        defaults = self.blocks.defaults
        if self.effectiveness == "family":  # one default for the API and the command line
            self.effectiveness = min(blocks.defaults.effectiveness for blocks in self._families)
        if self.strides is None:
            self.strides = default_strides(self.family, self.resolution) if isinstance(self.resolution, int) \
                else list(defaults.strides)
        if not self.mixed:  # one family: its space is the problem's (a mixed space keeps each family's own)
            self.btn_ratio = self.btn_ratio if self.btn_ratio is not None else defaults.btn_ratio
            self.kernels = self.kernels if self.kernels is not None else defaults.kernels
        self.strides = list(self.strides)
        self.stem_widths, self.out_widths = tuple(self.stem_widths), tuple(self.out_widths)
        self.depths = tuple(self.depths)
        if self.depth_ranges is not None:
            self.depth_ranges = [tuple(pair) if isinstance(pair, (list, tuple)) else pair for pair in self.depth_ranges]
        if self.btn_ratio is not None:
            self.btn_ratio = tuple(self.btn_ratio)
        if self.kernels is not None:
            self.kernels = tuple(self.kernels)
        if self.alpha is not None:
            self.alpha = [float(a) for a in self.alpha]
        self.validate()

    def _resolve_families(self) -> tuple[str, ...]:
        """``family`` and ``families`` checked and made consistent; the names a stage may take."""
        if isinstance(self.families, str) or (self.families is not None and not isinstance(self.families,
                                                                                            (list, tuple))):
            raise DesignError(f"{self.label('families')}: a list of family names, got {self.families!r}")
        names = tuple(self.families) if self.families is not None else ()
        for name in names + ((self.family,) if self.family is not None else ()):
            if name not in REGISTRY:
                raise DesignError(f"{self.label('family')}: must be one of {', '.join(REGISTRY)}, got {name!r}")
        if len(set(names)) != len(names):
            raise DesignError(f"{self.label('families')}: each family once, got {list(names)}")
        if self.family is None:
            self.family = names[0] if names else "bottleneck"
        if names and self.family not in names:
            raise DesignError(f"{self.label('family')}: {self.family!r} gives the stride pattern and must be one of families "
                              f"{list(names)}")
        names = names or (self.family,)
        self.families = names if len(names) > 1 else None
        return names

    # ---- validation -------------------------------------------------------------------
    def validate(self) -> None:
        def positive_int(value: Any, name: str) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DesignError(f"{self.label(name)}: must be a positive integer, got {value!r}")

        for name in ("resolution", "in_channels", "num_classes", "width_step", "bytes_per_element"):
            positive_int(getattr(self, name), name)
        if len(self.strides) < 2 or any(s not in (1, 2) for s in self.strides):
            raise DesignError(f"{self.label('strides')}: the stem's stride then one per stage, each 1 or 2; got {self.strides}")
        if self.stem_kernel % 2 == 0:
            raise DesignError(f"{self.label('stem_kernel')}: must be odd, got {self.stem_kernel}")
        if self.head is not None:
            positive_int(self.head, "head")
        for name in ("stem_widths", "out_widths", "depths"):
            lo, hi = getattr(self, name)
            positive_int(lo, f"{name}[0]")
            positive_int(hi, f"{name}[1]")
            if lo > hi:
                raise DesignError(f"{self.label(name)}: lower bound {lo} exceeds upper bound {hi}")
            largest = MAX_DEPTH if name == "depths" else MAX_WIDTH
            if hi > largest:  # the grid (and every model over it) grows with the range
                raise DesignError(f"{self.label(name)}: at most {largest}, got {hi}")
        for name in ("stem_widths", "out_widths"):
            lo, hi = getattr(self, name)
            if ceil_to(lo, self.width_step) > hi:
                raise DesignError(f"{self.label(name)}: no multiple of width_step={self.width_step} in [{lo}, {hi}]")
        if self.objective not in OBJECTIVES:
            raise DesignError(f"{self.label('objective')}: one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        try:
            for blocks in self._families:
                check_counting(self.counting, blocks.name, self.label("counting"))
        except ValueError as error:
            raise DesignError(str(error)) from None
        if self.btn_ratio is not None and not 0 < self.btn_ratio[0] <= self.btn_ratio[1]:
            raise DesignError(f"{self.label('btn_ratio')}: need 0 < min <= max, got {self.btn_ratio}")
        if self.kernels is not None and (not self.kernels or any(
                not isinstance(k, int) or k < 1 or k % 2 == 0 for k in self.kernels)):
            raise DesignError(f"{self.label('kernels')}: must be odd positive integers, got {self.kernels}")
        skips = {blocks.depth_penalty_skips for blocks in self._families}
        if len(skips) > 1 and (self.objective == "penalised" or self.max_depth_spread is not None):
            # the penalty's stages would depend on the family the first stage takes
            raise DesignError(f"{self.label('families')}: the authors' depth penalty (objective 'penalised', max_depth_spread) "
                              f"leaves out a different number of leading stages for {', '.join(self.families)}; "
                              f"give families that agree (or one family)")
        if self.first_stage_max_depth is not None:
            positive_int(self.first_stage_max_depth, "first_stage_max_depth")
            if self.first_stage_max_depth < self.depths[0]:
                raise DesignError(f"{self.label('first_stage_max_depth')}: {self.first_stage_max_depth} is below the smallest depth "
                                  f"{self.depths[0]}; the smallest feasible value is {self.depths[0]}")
        if isinstance(self.max_activation_bytes, str):  # a size with a unit ("256KiB"), as files may give it
            try:
                self.max_activation_bytes = parse_bytes(self.max_activation_bytes, self.label("max_activation_bytes"))
            except ValueError as error:
                raise DesignError(str(error)) from None
        for name in ("max_macs", "max_params", "max_activation_bytes", "effectiveness"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or not value > 0):
                raise DesignError(f"{self.label(name)}: must be a positive finite number, got {value!r}")
        if self.max_layers is not None:
            positive_int(self.max_layers, "max_layers")
        if (self.max_latency_ms is None) != (self.latency_profile is None):
            raise DesignError(f"{self.label('max_latency_ms')} and {self.label('latency_profile')}: give both (a budget "
                              f"and the profile that models it) or neither")
        if self.max_latency_ms is not None:
            if (isinstance(self.max_latency_ms, bool) or not isinstance(self.max_latency_ms, (int, float))
                    or not math.isfinite(self.max_latency_ms) or self.max_latency_ms <= 0):
                raise DesignError(f"{self.label('max_latency_ms')}: must be a positive finite number, got {self.max_latency_ms!r}")
            try:
                self.latency_model
            except ValueError as error:
                raise DesignError(f"{self.label('latency_profile')}: {error}") from None
        if self.depth_ranges is not None:
            if len(self.depth_ranges) != self.n_stages:
                raise DesignError(f"{self.label('depth_ranges')}: one (lo, hi) per stage ({self.n_stages}), "
                                  f"got {len(self.depth_ranges)}")
            for j, pair in enumerate(self.depth_ranges, start=1):
                if not isinstance(pair, tuple) or len(pair) != 2 or any(
                        isinstance(v, bool) or not isinstance(v, int) for v in pair):
                    raise DesignError(f"{self.label('depth_ranges')}: stage {j}: a pair of integers (lo, hi), got {pair!r}")
                lo, hi = self.stage_depth_bounds(j)
                if lo > hi:
                    raise DesignError(f"{self.label('depth_ranges')}: stage {j}'s range {tuple(self.depth_ranges[j - 1])} holds no "
                                      f"depth the other depth rules allow")
        if self.max_depth_spread is not None and (not isinstance(self.max_depth_spread, int)
                                                  or self.max_depth_spread < 0):
            raise DesignError(f"{self.label('max_depth_spread')}: must be a non-negative integer, got {self.max_depth_spread!r}")
        if math.prod(self.strides) > self.resolution:
            raise DesignError(f"{self.label('strides')}: a total stride of {math.prod(self.strides)} exceeds the resolution "
                              f"{self.resolution}")
        if self.alpha is not None:
            try:
                check_alpha(self.alpha, len(self.scoring_ends()), self.label("alpha"))
            except ValueError as error:
                raise DesignError(f"{error} (the stride pattern {self.strides})") from None

    # ---- derived structure --------------------------------------------------------------
    @property
    def n_stages(self) -> int:
        return len(self.strides) - 1

    @property
    def stage_alpha(self) -> list[float]:
        return list(self.alpha) if self.alpha is not None else list(default_alpha(len(self.scoring_ends())))

    @property
    def latency_model(self):
        """The :class:`~designer.design.latency.LatencyProfile` of ``latency_profile``, or None."""
        if self.latency_profile is None:
            return None
        from designer.design.latency import LatencyProfile
        return LatencyProfile.from_dict(self.latency_profile)

    @property
    def budget_names(self) -> tuple[str, str]:
        """What max_macs and max_params count, in words."""
        return ("MACs", "params") if self.counting == "mpdesign" else ("FLOPs (TinyNAS)", "model size (TinyNAS)")

    @property
    def blocks(self) -> BlockFamily:
        """The block family ``family``, resolved once (its costs, widths and layers)."""
        return self._blocks

    @property
    def block_families(self) -> tuple[BlockFamily, ...]:
        """Every family a stage may take (``family`` alone unless ``families`` names more)."""
        return self._families

    @property
    def mixed(self) -> bool:
        """Whether the solver picks each stage's family."""
        return len(self._families) > 1

    @property
    def layers_per_block(self) -> int:
        return self.blocks.layers_per_block

    def btn_ratio_of(self, blocks: BlockFamily | None = None) -> tuple[float, float]:
        """The inner width's ratio range for blocks of ``blocks`` (default: ``family``)."""
        return self.btn_ratio if self.btn_ratio is not None else (blocks or self.blocks).defaults.btn_ratio

    def kernels_of(self, blocks: BlockFamily | None = None) -> tuple[int, ...]:
        """The kernels blocks of ``blocks`` (default: ``family``) may take."""
        return self.kernels if self.kernels is not None else (blocks or self.blocks).defaults.kernels

    def restricted(self, name: str) -> DesignProblem:
        """The same problem with every stage of family ``name``: its own space, this problem's
        stride pattern, effectiveness and budgets (a subset of this problem's designs); ``name``
        is one of its families."""
        if name not in [blocks.name for blocks in self._families]:
            raise DesignError(f"family: {name!r} is not among this problem's families "
                              f"{[blocks.name for blocks in self._families]}")
        blocks = block_family(name)
        data = self.to_dict() | {"family": name, "families": None, "btn_ratio": list(self.btn_ratio_of(blocks)),
                                 "kernels": list(self.kernels_of(blocks))}
        return DesignProblem.from_dict(data)

    def stage_depth_bounds(self, j: int) -> tuple[int, int]:
        """Depth bounds of stage ``j`` (1-based)."""
        lo, hi = self.depths
        if j == 1 and self.first_stage_max_depth is not None:
            hi = min(hi, self.first_stage_max_depth)
        if self.depth_ranges is not None:
            lo, hi = max(lo, self.depth_ranges[j - 1][0]), min(hi, self.depth_ranges[j - 1][1])
        return lo, hi

    def btn_bounds(self, out: int, blocks: BlockFamily | None = None) -> tuple[int, int]:
        """The inner widths a block of ``blocks`` (default: ``family``) of width ``out`` may take."""
        lo, hi = self.btn_ratio_of(blocks)
        return max(self.width_step, floor_to(lo * out, self.width_step)), ceil_to(hi * out, self.width_step)

    def resolutions(self) -> list[int]:
        """Cost-model resolution after the stem (index 0) and after each stage (padded convs)."""
        out, r = [], self.resolution
        for s in self.strides:
            r = -(-r // s)
            out.append(r)
        return out

    def scoring_ends(self) -> list[tuple[int, int]]:
        """(stage index ending a scoring stage: 0 = stem, n + 1 = head, its scorer resolution)."""
        score_res, r = [], self.resolution
        for s in self.strides:
            r //= s
            score_res.append(r)
        ends = [j - 1 for j in range(1, self.n_stages + 1) if self.strides[j] == 2]
        ends.append(self.n_stages + 1 if self.head is not None else self.n_stages)
        return [(j, score_res[min(j, self.n_stages)]) for j in ends]

    def penalty_stages(self) -> list[int]:
        """1-based stages whose depths the authors' depth penalty measures."""
        return list(range(1, self.n_stages + 1))[self.blocks.depth_penalty_skips:]

    def to_spec(self, stem_width: int, stages: list[tuple]) -> NetworkSpec:
        """A spec from the stem width and per-stage (out, btn, k, L), or (out, btn, k, L, family)."""
        return NetworkSpec(
            resolution=self.resolution, in_channels=self.in_channels, num_classes=self.num_classes,
            stem=Stem(out=stem_width, k=self.stem_kernel, stride=self.strides[0]),
            stages=[Stage(stage[4] if len(stage) > 4 else self.family, *stage[:4], stride)
                    for stage, stride in zip(stages, self.strides[1:])],
            head=self.head, name=self.name)

    # ---- serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("labels")  # how errors are worded, not the problem
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DesignProblem:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise DesignError(f"problem: unknown field(s) {', '.join(unknown)}")
        return cls(**data)

    # ---- checking a design against the problem ----------------------------------------
    def violations(self, spec: NetworkSpec) -> list[str]:
        """Every budget or space rule that ``spec`` breaks, recounted independently."""
        return self.evaluate(spec)[1]

    def objective_value(self, score: float, depth_penalty: float) -> float:
        """The objective this problem maximises, from a design's score and depth penalty."""
        return score - depth_penalty if self.objective == "penalised" else score

    def evaluate(self, spec: NetworkSpec) -> tuple[float, list[str]]:
        """The objective's value for ``spec`` (its DeepMAD score, less the depth penalty when
        ``objective`` is "penalised") and the rules it breaks, from one recount."""
        costs, scores = count(spec, self.bytes_per_element), deepmad_scores(spec, self.stage_alpha)
        compute, size = costs.budget(self.counting)
        found = []
        if self.max_macs is not None and compute > self.max_macs:
            found.append(f"{self.budget_names[0]} {compute} > {self.max_macs:g}")
        if self.max_params is not None and size > self.max_params:
            found.append(f"{self.budget_names[1]} {size} > {self.max_params:g}")
        if self.max_layers is not None and scores.layers > self.max_layers:
            found.append(f"layers {scores.layers} > {self.max_layers}")
        if self.effectiveness is not None and scores.effectiveness > self.effectiveness + 1e-12:
            found.append(f"effectiveness {scores.effectiveness:.6f} > {self.effectiveness}")
        if self.max_latency_ms is not None:
            modelled = self.latency_model.predict(spec)
            if modelled > self.max_latency_ms * (1 + 1e-9):
                found.append(f"modelled latency {modelled:.4g} ms > {self.max_latency_ms:g}")
        if self.max_activation_bytes is not None and costs.max_activation_bytes > self.max_activation_bytes:
            found.append(f"activation bytes {costs.max_activation_bytes} > {self.max_activation_bytes:g}")
        if self.monotone and any(a.out > b.out for a, b in zip(spec.stages, spec.stages[1:])):
            found.append("stage widths decrease")
        for j, stage in enumerate(spec.stages, start=1):
            lo, hi = self.stage_depth_bounds(j)
            if not lo <= stage.L <= hi:
                found.append(f"stage {j} depth {stage.L} outside [{lo}, {hi}]")
            if stage.family not in [blocks.name for blocks in self._families]:
                found.append(f"stage {j} family {stage.family} not among {', '.join(b.name for b in self._families)}")
                continue
            b_lo, b_hi = self.btn_bounds(stage.out, block_family(stage.family))
            if not b_lo <= stage.btn <= b_hi:
                found.append(f"stage {j} btn {stage.btn} outside [{b_lo}, {b_hi}]")
        if self.max_depth_spread is not None:
            depths = [spec.stages[j - 1].L for j in self.penalty_stages()]
            if depths and max(depths) - min(depths) > self.max_depth_spread:
                found.append(f"depth spread {max(depths) - min(depths)} > {self.max_depth_spread}")
        return self.objective_value(scores.score, scores.depth_penalty), found


@dataclass(frozen=True)
class DesignResult:
    """A solved design: the spec, the solver's report, and figures recounted from the spec
    (by :meth:`from_spec`, the one way to make one)."""

    problem: DesignProblem
    spec: NetworkSpec | None
    solve: SolveResult
    score: float | None = None
    macs: int | None = None
    params: int | None = None
    effectiveness: float | None = None  # the design's (largest rho over its stage ends)
    layers: int | None = None
    depth_penalty: float | None = None
    max_activation_bytes: int | None = None
    latency_ms: float | None = None  # modelled, with the problem's latency profile
    history: list[dict[str, float]] = field(default_factory=list)
    first_design_seconds: float | None = None  # when a MILP first found a design (not the constructive start)
    counted: tuple[int, int] | None = None  # (compute, size) under the problem's counting

    @classmethod
    def from_spec(cls, problem: DesignProblem, spec: NetworkSpec | None, solve: SolveResult,
                  history: list[dict[str, float]] | None = None,
                  first_design_seconds: float | None = None) -> DesignResult:
        if spec is None:
            return cls(problem=problem, spec=None, solve=solve, history=history or [])
        costs, scores = count(spec, problem.bytes_per_element), deepmad_scores(spec, problem.stage_alpha)
        return cls(problem=problem, spec=spec, solve=solve, score=scores.score, macs=costs.macs, params=costs.params,
                   effectiveness=scores.effectiveness, layers=scores.layers, depth_penalty=scores.depth_penalty,
                   max_activation_bytes=costs.max_activation_bytes, history=history or [],
                   first_design_seconds=first_design_seconds, counted=costs.budget(problem.counting),
                   latency_ms=problem.latency_model.predict(spec) if problem.latency_profile is not None else None)

    @property
    def status(self) -> str:
        return str(self.solve.status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "spec": self.spec.to_dict() if self.spec is not None else None,
            "status": str(self.solve.status), "objective": self.solve.objective, "bound": self.solve.bound,
            "gap": self.solve.gap, "seconds": self.solve.seconds, "score": self.score, "macs": self.macs,
            "params": self.params, "effectiveness": self.effectiveness, "layers": self.layers,
            "depth_penalty": self.depth_penalty, "max_activation_bytes": self.max_activation_bytes,
            "latency_ms": self.latency_ms,
            "solver": self.solve.solver, "message": self.solve.message, "model_size": self.solve.model_size,
            "history": self.history, "first_design_seconds": self.first_design_seconds,
            "counting": self.problem.counting, "counted": list(self.counted) if self.counted else None,
            "problem": self.problem.to_dict(),
        }
