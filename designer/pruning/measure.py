"""The one distortion measure every pruning path uses: the mean squared error of the logits
against the unpruned network's, per sample (the mean over a sample's logits), then averaged
over the samples (:func:`distortion`), or kept per sample (:func:`per_sample`, for worst-case
curves). Curves, channel groups, additivity checks and the channel pruner all call these."""

from __future__ import annotations

import torch


def per_sample(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Each sample's mean squared difference of its logits from the reference's."""
    return ((output - reference) ** 2).flatten(1).mean(1)


def distortion(output: torch.Tensor, reference: torch.Tensor) -> float:
    """The per-sample distortion averaged over the samples."""
    return float(per_sample(output, reference).mean())
