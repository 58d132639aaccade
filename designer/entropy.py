"""DeepMAD expressiveness and effectiveness, as the authors' released code computes them.

Notation (log is the natural log). The network is expanded into *units*: the stem conv
(1 layer), every block (3 layers for ``bottleneck`` and ``inverted``, 2 for ``basic``) and
the head 1x1 conv if any (1 layer). A stage's first block takes ``c_in`` channels and the
stride; its other blocks take ``out`` channels and stride 1.

(1) Unit width W_u, the product of its layers' fan-ins c_in * k^2 / groups:
      conv: c_in k^2; a block: its family's (``BlockFamily.log_width``), e.g.
      bottleneck c_in (btn k^2) btn, inverted c_in k^2 btn, basic (c_in k^2)(btn k^2),
      fused (c_in k^2) btn.
    logstd_u = 0.5 log W_u.
(2) Scoring stages: a new one starts at every stride-2 unit except the first unit.
    c_i = output channels of stage i's last unit, r_i = resolution after it (integer
    division by the strides).
(3) H_i = (log c_i + log r_i^2) * sum_{u <= end of stage i} logstd_u
(4) score = sum_i alpha_i H_i. Default stage weights (:func:`default_alpha`): 1 for every
    scoring stage but the last, 8 for the last, as DeepMAD weights its five stages
    (1, 1, 1, 1, 8); a network with n scoring stages gets (1, ..., 1, 8) of length n.
(5) rho_i = Lc_i / exp(sum_{u <= end i} log W_u / Lc_i), Lc_i = layers up to stage end i;
    effectiveness = max_i rho_i.
(6) depth penalty = 10 exp(std of the spec stages' depths L) (population std), leaving
    out the leading stages the first stage's family says (``depth_penalty_skips``: two for
    bottleneck networks). Reported apart, never subtracted from ``score``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from designer.families import family
from designer.spec import NetworkSpec

LAST_STAGE_WEIGHT = 8.0  # DeepMAD's weight on the last scoring stage; the others weigh 1
DEPTH_PENALTY_RATIO = 10.0


@dataclass(frozen=True)
class Unit:
    """One scoring unit: a conv (stem, head) or a whole block."""

    name: str
    log_width: float  # log W_u
    layers: int
    out: int
    stride: int


def default_alpha(n_stages: int) -> tuple[float, ...]:
    """The default stage weights for ``n_stages`` scoring stages: (1, ..., 1, 8) (equation 4).

    The one place the default is made: ``inspect``, ``design``, the pipeline and the API all
    call it, so a network with three downsamplings is scored as one with five would be."""
    if n_stages < 1:
        raise ValueError(f"alpha: a network has at least one scoring stage, got {n_stages}")
    return (1.0,) * (n_stages - 1) + (LAST_STAGE_WEIGHT,)


def check_alpha(alpha, n_stages: int, option: str = "alpha") -> tuple[float, ...]:
    """``alpha`` as a tuple of floats, or a ValueError naming ``option`` and what is wrong with it."""
    values = tuple(float(a) for a in alpha)
    if len(values) != n_stages:
        raise ValueError(f"{option}: got {len(values)} stage weights for {n_stages} scoring stages (one per "
                         f"stride-2 unit after the first unit, plus the first)")
    if not all(math.isfinite(a) and a >= 0 for a in values) or not any(values):
        raise ValueError(f"{option}: stage weights must be finite, non-negative and not all zero, got "
                         f"{', '.join(f'{a:g}' for a in values)}")
    return values


def units(spec: NetworkSpec) -> list[Unit]:
    out = [Unit("stem", math.log(spec.in_channels * spec.stem.k ** 2), 1, spec.stem.out, spec.stem.stride)]
    channels = spec.stem.out
    for i, stage in enumerate(spec.stages):
        for j in range(stage.L):
            c_in = channels if j == 0 else stage.out
            block = family(stage.family)
            out.append(Unit(f"stages.{i}.{j}", block.log_width(c_in, stage.btn, stage.k), block.layers_per_block,
                            stage.out, stage.stride if j == 0 else 1))
        channels = stage.out
    if spec.head is not None:
        out.append(Unit("head", math.log(channels), 1, spec.head, 1))
    return out


@dataclass
class DeepMADScores:
    score: float
    stage_entropy: list[float]  # H_i, before alpha
    alpha: tuple[float, ...]
    stage_ends: list[int]  # index of each scoring stage's last unit
    stage_channels: list[int]
    stage_resolution: list[int]
    rho: list[float]
    effectiveness: float
    layers: int
    depth_penalty: float


def scoring_stages(unit_list: list[Unit]) -> list[int]:
    """Index of the last unit of each scoring stage (equation 2)."""
    ends = [i - 1 for i, unit in enumerate(unit_list) if i > 0 and unit.stride == 2]
    ends.append(len(unit_list) - 1)
    return ends


def depth_penalty(spec: NetworkSpec, ratio: float = DEPTH_PENALTY_RATIO) -> float:
    """The authors' depth penalty (equation 6)."""
    depths = [stage.L for stage in spec.stages][family(spec.stages[0].family).depth_penalty_skips:]
    if not depths:
        return ratio  # exp(0): a single depth has no spread
    mean = sum(depths) / len(depths)
    std = math.sqrt(sum((d - mean) ** 2 for d in depths) / len(depths))
    return ratio * math.exp(std)


def deepmad_scores(spec: NetworkSpec, alpha: tuple[float, ...] | list[float] | None = None) -> DeepMADScores:
    """Expressiveness score, effectiveness and depth penalty of ``spec`` (equations 1-6)."""
    unit_list = units(spec)
    ends = scoring_stages(unit_list)
    alpha = default_alpha(len(ends)) if alpha is None else check_alpha(alpha, len(ends))

    resolution_after, r = [], spec.resolution
    for unit in unit_list:
        r //= unit.stride
        resolution_after.append(r)
    if min(resolution_after) < 1:
        raise ValueError(f"resolution {spec.resolution} vanishes under a total stride of {spec.total_stride}")

    prefix_log_width, prefix_layers, total_w, total_l = [], [], 0.0, 0
    for unit in unit_list:
        total_w += unit.log_width
        total_l += unit.layers
        prefix_log_width.append(total_w)
        prefix_layers.append(total_l)

    entropy, channels, resolution, rho = [], [], [], []
    for end in ends:
        c, res = unit_list[end].out, resolution_after[end]
        entropy.append((math.log(c) + math.log(res ** 2)) * 0.5 * prefix_log_width[end])
        channels.append(c)
        resolution.append(res)
        layers = prefix_layers[end]
        rho.append(layers / math.exp(prefix_log_width[end] / layers))
    score = sum(a * h for a, h in zip(alpha, entropy))
    return DeepMADScores(score=score, stage_entropy=entropy, alpha=alpha, stage_ends=ends,
                         stage_channels=channels, stage_resolution=resolution, rho=rho,
                         effectiveness=max(rho), layers=prefix_layers[-1], depth_penalty=depth_penalty(spec))
