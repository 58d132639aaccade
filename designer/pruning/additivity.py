"""Does distortion add up? Compare the sum of single-layer distortions (the curves) with the
distortion measured when all layers are pruned together, over random allocations."""

from __future__ import annotations

import random

import torch
from torch import nn

from designer.pruning.curves import MAGNITUDE, Criterion, Curves, batch_statistics, magnitude_mask, prunable_layers
from designer.pruning.measure import distortion


@torch.no_grad()
def additivity(model: nn.Module, inputs: torch.Tensor, curves: Curves, samples: int = 50, seed: int = 0,
               max_sparsity: float = 1.0, criterion: Criterion | str = MAGNITUDE) -> list[tuple[float, float]]:
    """(summed single-layer distortion, measured joint distortion) for ``samples`` random
    allocations, each layer at a random grid point of its curve (at most ``max_sparsity``)."""
    rng = random.Random(seed)
    modules = dict(prunable_layers(model))
    originals = {name: module.weight.detach().clone() for name, module in modules.items()}
    pairs = []
    model.eval()
    with batch_statistics(model):
        reference = model(inputs)
        for _ in range(samples):
            predicted = 0.0
            for layer in curves.layers:
                choices = [i for i, s in enumerate(layer.sparsity) if s <= max_sparsity]
                i = rng.choice(choices)
                predicted += layer.distortion[i]
                w = originals[layer.name]
                modules[layer.name].weight.copy_(w * magnitude_mask(w, layer.sparsity[i], w != 0, criterion))
            measured = distortion(model(inputs), reference)
            pairs.append((predicted, measured))
            for name, module in modules.items():
                module.weight.copy_(originals[name])
    return pairs
