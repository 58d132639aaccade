"""Channels with reconstruction: after channels are cut, the layers that read them are re-fitted.

When a channel group loses channels (Torch-Pruning cuts the producing layers' rows, their norms,
and the *consumers'* input channels), each consumer ``y = W x`` (a conv or linear whose input
channels were cut) keeps the columns K of its remaining input channels. Its remaining weights are
re-fitted by least squares so that its outputs on the calibration data move as little as
possible (He et al., Channel Pruning, ICCV 2017; Luo et al., ThiNet, ICCV 2017):

    min_{W'} sum_n || W x_n - W' x_{n,K} ||^2   =>   W'_K = W H_{:,K} (H_{K,K})^{-1}          (4)

with ``H = sum_n x_n x_n^T`` the consumer's input Hessian measured on the dense model
(:mod:`designer.pruning.hessian`; a conv's channel c owns the ``k_h k_w`` columns ``c k_h k_w ...``
of its unfold). This is OBS's (3) (:mod:`designer.pruning.obs`) with one kept set for every row,
so it is one solve with many right-hand sides, damped as OBS damps it. Between a producer and its
consumers every operation is channel-wise (norms, activations, residual additions of the same
channels), so when one group is cut alone the consumers' kept inputs are exactly the dense
model's and (4) is the optimum; when several groups are cut at once (the final allocation) the
same fit on the dense statistics is an approximation (an upstream cut moves the inputs too).

Grouped and depthwise convs are not re-fitted (their input channels go with their outputs). A
consumer with a bias gets its outputs' mean back (OBC's statistics correction, as for weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from designer.pruning.obs import bias_shift, reconstruct

IN_HANDLERS = ("prune_in_channels",)  # Torch-Pruning's handlers that cut a layer's input channels
OUT_HANDLERS = ("prune_out_channels",)


@dataclass
class Cuts:
    """The input and output channels cut from each conv or linear layer, by name, as indices of
    the dense layer (a later cut's indices are the layer's current ones, mapped back here)."""

    inputs: dict[str, set[int]] = field(default_factory=dict)
    outputs: dict[str, set[int]] = field(default_factory=dict)
    _alive: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def record(self, group, names: dict[nn.Module, str]) -> None:
        """Note the cuts of one Torch-Pruning group (before it is pruned)."""
        for item in group:
            module, handler = item.dep.target.module, getattr(item.dep.handler, "__name__", "")
            if not isinstance(module, (nn.Conv2d, nn.Linear)) or module not in names:
                continue
            if handler in IN_HANDLERS:
                side, key, size = self.inputs, "in", module.weight.shape[1] * getattr(module, "groups", 1)
            elif handler in OUT_HANDLERS:
                side, key, size = self.outputs, "out", module.weight.shape[0]
            else:
                continue
            alive = self._alive.setdefault((names[module], key), list(range(size)))
            removed = {alive[int(i)] for i in item.idxs}
            side.setdefault(names[module], set()).update(removed)
            self._alive[(names[module], key)] = [i for i in alive if i not in removed]


def consumers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers a channel cut may re-fit: every ungrouped conv and every linear."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)]


def _columns(module: nn.Module, kept_channels: list[int]) -> torch.Tensor:
    """The unfold columns of the kept input channels (a linear: the features themselves)."""
    if isinstance(module, nn.Linear):
        return torch.tensor(kept_channels, dtype=torch.long)
    area = module.kernel_size[0] * module.kernel_size[1]
    return (torch.tensor(kept_channels, dtype=torch.long)[:, None] * area + torch.arange(area)).flatten()


@torch.no_grad()
def refit(dense: nn.Module, pruned: nn.Module, cuts: Cuts, hessians: dict[str, torch.Tensor],
          means: dict[str, torch.Tensor] | None = None, damp: float = 0.01) -> list[str]:
    """(4) for every consumer of ``pruned`` that lost input channels and has a Hessian: its weight
    (and bias) set from ``dense``'s; returns the names re-fitted."""
    dense_modules, pruned_modules = dict(dense.named_modules()), dict(pruned.named_modules())
    done = []
    for name, removed in cuts.inputs.items():
        if name not in hessians or not removed:
            continue
        source, target = dense_modules[name], pruned_modules[name]
        if isinstance(source, nn.Conv2d) and source.groups != 1:
            continue
        channels = source.in_features if isinstance(source, nn.Linear) else source.in_channels
        rows = [r for r in range(source.weight.shape[0]) if r not in cuts.outputs.get(name, set())]
        weight = source.weight.detach().reshape(source.weight.shape[0], -1)[rows]
        columns = _columns(source, [c for c in range(channels) if c not in removed])
        mask = torch.zeros_like(weight, dtype=torch.bool)
        mask[:, columns] = True
        new = reconstruct(weight, mask, hessians[name], damp)
        if means is not None and name in means and target.bias is not None:
            target.bias.sub_(bias_shift(weight, new, means[name]).to(target.bias.device, target.bias.dtype))
        target.weight.copy_(new[:, columns].reshape(target.weight.shape))
        done.append(name)
    return done
