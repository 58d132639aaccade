"""Does distortion add up? Compare the sum of single-layer distortions (the curves) with the
distortion measured when all layers are pruned together, over random allocations."""

from __future__ import annotations

import random

import torch
from torch import nn

from designer.pruning.correction import joint_distortion
from designer.pruning.criteria import MAGNITUDE, Criterion
from designer.pruning.curves import Curves, batch_statistics


@torch.no_grad()
def additivity(model: nn.Module, inputs: torch.Tensor, curves: Curves, samples: int = 50, seed: int = 0,
               max_sparsity: float = 1.0, criterion: Criterion | str = MAGNITUDE) -> list[tuple[float, float]]:
    """(summed single-layer distortion, measured joint distortion) for ``samples`` random
    allocations, each layer at a random grid point of its curve (at most ``max_sparsity``);
    the joint distortion is :func:`designer.pruning.correction.joint_distortion`'s."""
    rng = random.Random(seed)
    with batch_statistics(model.eval()):
        reference = model(inputs)
    pairs = []
    for _ in range(samples):
        picks = {layer.name: rng.choice([i for i, s in enumerate(layer.sparsity) if s <= max_sparsity])
                 for layer in curves.layers}
        predicted = sum(layer.distortion[picks[layer.name]] for layer in curves.layers)
        sparsity = {layer.name: layer.sparsity[picks[layer.name]] for layer in curves.layers}
        pairs.append((predicted, joint_distortion(model, inputs, sparsity, criterion, reference)))
    return pairs
