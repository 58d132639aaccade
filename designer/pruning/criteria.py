"""Within-layer criteria and the masks they choose.

A criterion ranks a layer's weights (larger is kept first) and says which weights a layer keeps
under a mask: :class:`Magnitude` (the survivors as they were) or :class:`OBS` (saliency, along
ExactOBS's greedy path on small layers, and the survivors re-fitted: :mod:`designer.pruning.obs`).
Criteria are objects passed to curves, masks and pruning (Torch-Pruning's way); :data:`CRITERIA`
names the built-in ones for the command line. :func:`magnitude_mask` turns any criterion's
importance into a mask of exactly :func:`kept_count` weights.
"""

from __future__ import annotations

import math

import torch


def kept_count(weight: torch.Tensor, sparsity: float, current: torch.Tensor | None = None) -> int:
    """How many weights :func:`magnitude_mask` keeps at ``sparsity``: ``n - floor(sparsity n)``,
    raised to the floor (one weight per output channel that still has one) and capped by the
    weights ``current`` still keeps. The floor is *part* of this count, never added on top."""
    if not 0.0 <= sparsity <= 1.0 or math.isnan(sparsity):
        raise ValueError(f"sparsity: must be in [0, 1], got {sparsity}")
    n = weight.numel()
    alive = current.reshape(weight.shape[0], -1) if current is not None else None
    floor = int(alive.any(dim=1).sum()) if alive is not None else weight.shape[0]
    # 1e-6: a sparsity written as 1 - kept / n (curves, allocations) gives back exactly kept
    keep = max(n - int(math.floor(sparsity * n + 1e-6)), floor)
    return min(keep, int(alive.sum())) if alive is not None else keep


class Criterion:
    """A within-layer criterion: each weight's importance (larger is kept first) and the weights a
    layer keeps under a mask. A new one is a class with a ``name``, :meth:`importance` and, if it
    re-fits the kept weights, :meth:`pruned`, passed to curves, masks and pruning as an object
    (Torch-Pruning's way); :data:`CRITERIA` lists the built-in ones by name for the CLI.
    ``needs_hessian``: it reads the layer's H (:mod:`designer.pruning.hessian`), passed as
    ``hessian``."""

    name: str
    needs_hessian: bool = False

    def importance(self, weight: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def pruned(self, weight: torch.Tensor, mask: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's weights under ``mask`` (zeros where it is False): the survivors as they were."""
        return weight.detach() * mask


class Magnitude(Criterion):
    """|w|: the smallest weights go first."""

    name = "magnitude"

    def importance(self, weight: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
        return weight.detach().abs()


class OBS(Criterion):
    """Optimal Brain Surgeon (:mod:`designer.pruning.obs`): weights by their saliency
    ``w^2 / [H^-1]_ii`` (along ExactOBS's greedy path on small layers) and the survivors
    re-fitted to the layer's calibration outputs;
    ``damp``: H's damping, a fraction of its mean diagonal."""

    name = "obs"
    needs_hessian = True

    def __init__(self, damp: float = 0.01):
        if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not 0 < damp < 1:
            raise ValueError(f"damp: a fraction of H's mean diagonal in (0, 1), got {damp!r}")
        self.damp = float(damp)

    def _hessian(self, hessian: torch.Tensor | None) -> torch.Tensor:
        if hessian is None:
            raise ValueError("obs: needs the layer's Hessian (designer.pruning.hessian.layer_hessians)")
        return hessian

    def importance(self, weight: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
        from designer.pruning.obs import greedy_saliency, saliency
        if self.greedy(weight, hessian):
            return greedy_saliency(weight, self._hessian(hessian), self.damp)
        return saliency(weight, self._hessian(hessian), self.damp)

    def greedy(self, weight: torch.Tensor, hessian: torch.Tensor | None) -> bool:
        """Whether the layer's mask follows ExactOBS's greedy path (small enough) or the one-shot
        saliency (:data:`designer.pruning.obs.GREEDY_WORK`)."""
        from designer.pruning.obs import GREEDY_WORK
        side = self._hessian(hessian).shape[-1]
        return weight.shape[0] * float(side) ** 3 <= GREEDY_WORK

    def pruned(self, weight: torch.Tensor, mask: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
        from designer.pruning.obs import reconstruct
        return reconstruct(weight, mask, self._hessian(hessian), self.damp)

    def __repr__(self) -> str:
        return f"OBS(damp={self.damp:g})"


MAGNITUDE = Magnitude()
CRITERIA: dict[str, Criterion] = {MAGNITUDE.name: MAGNITUDE, "obs": OBS()}


def criterion_of(criterion: Criterion | str) -> Criterion:
    """A criterion object, or the built-in one of that name."""
    if isinstance(criterion, Criterion):
        return criterion
    if criterion not in CRITERIA:
        raise ValueError(f"criterion: must be one of {', '.join(CRITERIA)} (or a Criterion), got {criterion!r}")
    return CRITERIA[criterion]


def importance_of(criterion: Criterion, weight: torch.Tensor, hessian: torch.Tensor | None = None) -> torch.Tensor:
    """``criterion``'s importance of ``weight``; the Hessian only to a criterion that reads it
    (a user's ``importance(self, weight)`` keeps working)."""
    return criterion.importance(weight, hessian) if criterion.needs_hessian else criterion.importance(weight)


def magnitude_mask(weight: torch.Tensor, sparsity: float, current: torch.Tensor | None = None,
                   criterion: Criterion | str = MAGNITUDE, hessian: torch.Tensor | None = None,
                   importance: torch.Tensor | None = None) -> torch.Tensor:
    """Keep exactly :func:`kept_count` weights: each output channel's most important surviving
    weight (so no channel dies), then the most important others by ``criterion`` (magnitude by
    default; ``hessian`` for one that reads it; ``importance``: the criterion's, computed
    before, as for every point of a curve); never one that ``current`` already removed."""
    criterion = criterion_of(criterion)
    keep = kept_count(weight, sparsity, current)
    if importance is None:
        importance = importance_of(criterion, weight, hessian)
    magnitude = importance.reshape(weight.shape[0], -1).float().clone()
    alive = (current.reshape(magnitude.shape).bool() if current is not None
             else torch.ones_like(magnitude, dtype=torch.bool))
    magnitude[~alive] = -1.0
    mask = torch.zeros(magnitude.shape, dtype=torch.bool, device=weight.device)
    rows = torch.nonzero(alive.any(dim=1)).flatten()
    mask[rows, magnitude[rows].argmax(dim=1)] = True
    rest = keep - int(mask.sum())
    if rest > 0:
        candidates = torch.where(mask, torch.full_like(magnitude, -2.0), magnitude).flatten()
        mask.view(-1)[torch.topk(candidates, rest, sorted=False).indices] = True
    return mask.reshape(weight.shape)
