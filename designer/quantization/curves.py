r"""Per-layer distortion over the choices a layer may take: bit-widths, and (bits, sparsity) pairs.

The pruning curves' measurement (Xu et al., ICCV 2023; :mod:`designer.pruning.curves`), over a
different set of choices: for every quantizable layer and every option ``(b, s)`` — weights at
``b`` bits (:mod:`designer.quantization.grid`, rounded by the rule given:
:mod:`designer.quantization.rounding`), the ``s`` smallest by magnitude removed first — that
layer alone takes the option and the logits' mean squared error against the float network on
the calibration batch is measured; the options of one layer run through the suffix of the chain
together (``Measurement.distortions``). Activations stay float while the weights' options are
measured: every activation is quantized at 8 bits whatever the allocation chooses, so it adds
the same to every allocation (its share is measured on the whole network, in the report).

As for pruning, the allocation assumes the layers' distortions add (HAWQ-V3 and OBC's database
make the same assumption); the report compares the sum with the measured joint distortion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm import tqdm

from designer.pruning.criteria import magnitude_mask
from designer.pruning.curves import Measurement, layer_macs, prunable_layers
from designer.pruning.hessian import layer_hessians
from designer.quantization.grid import weight_scales
from designer.quantization.rounding import Rounding
from designer.schemas import FORMAT_VERSION


@dataclass
class LayerOptions:
    """One layer's options and their measured distortions; ``weights``: its weight count,
    ``channels``: its output channels (one scale each), ``macs`` on one input."""

    name: str
    weights: int
    channels: int
    macs: int
    bits: list[int]
    sparsity: list[float]
    distortion: list[float]


@dataclass
class OptionCurves:
    layers: list[LayerOptions]

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "layers": [asdict(layer) for layer in self.layers]}


def quantized_weight(weight: torch.Tensor, bits: int, sparsity: float, rounding: Rounding,
                     hessian: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The layer's weight at option (``bits``, ``sparsity``), its per-channel scales and its mask
    (None: dense): the smallest weights removed by magnitude, the rest on the grid by
    ``rounding``. A weight already zero (a pruned network) stays zero: GPTQ would otherwise
    move error into it. The one place curves and the materialised network take a layer's
    quantized weight from."""
    weight = weight.detach()
    scales = weight_scales(weight, bits)
    current = weight != 0
    if sparsity > 0:
        mask = magnitude_mask(weight, sparsity, current)
    else:
        mask = None if bool(current.all()) else current
    return rounding.round(weight, scales, bits, mask, hessian), scales, mask


def layer_table(model: nn.Module, inputs: torch.Tensor, bits: tuple[int, ...], sparsities: tuple[float, ...]
                ) -> list[LayerOptions]:
    """Every quantizable layer with its options and no distortions yet: what the budgets read
    (checked before any measurement)."""
    macs = layer_macs(model, inputs)
    return [LayerOptions(name, module.weight.numel(), module.weight.shape[0], macs[name],
                         [b for b in bits for _ in sparsities], [s for _ in bits for s in sparsities], [])
            for name, module in prunable_layers(model)]


@torch.no_grad()
def option_curves(model: nn.Module, inputs: torch.Tensor, table: list[LayerOptions], rounding: Rounding,
                  hessians: dict[str, torch.Tensor] | None = None, chunk: int = 16, progress: bool = False,
                  store: dict | None = None) -> OptionCurves:
    """Each layer of ``table`` with the distortion of each of its options (module doc); the model
    in eval mode as it is (BatchNorm folded, :mod:`designer.quantization.fold`). ``hessians``:
    the layers' H when ``rounding`` reads it (measured here otherwise). ``store``: filled with
    each option's :func:`quantized_weight` by (layer, option index), so the option the allocation
    chooses is not rounded again (GPTQ is the costly part; the store holds every option's weights,
    as many copies of the layer weights as it has options)."""
    model.eval()
    layers = dict(prunable_layers(model))
    if rounding.needs_hessian and hessians is None:
        hessians = layer_hessians(model, inputs, list(layers.items()))
    hessians = hessians or {}
    measurement = Measurement.of(model, inputs, grid=[0.0], criterion="magnitude", points=None, chunk=chunk,
                                  worst_case=False)
    done = []
    for row in tqdm(table, desc="quantization curves", disable=not progress, leave=False, unit="layer"):
        weight = layers[row.name].weight
        options = [quantized_weight(weight, b, s, rounding, hessians.get(row.name))
                   for b, s in zip(row.bits, row.sparsity)]
        if store is not None:
            store.update({(row.name, i): option for i, option in enumerate(options)})
        stack = torch.stack([option[0] for option in options])
        done.append(LayerOptions(row.name, row.weights, row.channels, row.macs, row.bits, row.sparsity,
                                 measurement.distortions(row.name, stack)))
    return OptionCurves(done)
