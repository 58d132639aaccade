"""The user's own module with fake quantization: it computes what the integer network computes,
and it still trains (quantization-aware fine-tuning with ``train``'s loop).

Per quantized layer (a :class:`LayerQuant`): its weight through a parametrization
(``torch.nn.utils.parametrize``: :class:`WeightQuant`, the grid (1) of
:mod:`designer.quantization.grid` with the mask of a pruned option), its input and its output
through 8-bit activation quantization (forward hooks: :class:`ActivationQuant`), its bias on the
int32 grid ``s_x s_c`` (:class:`BiasQuant`). Those are the points the ONNX file has Quantize /
DequantizeLinear pairs at (:mod:`designer.quantization.onnx_file`), so the two compute the same
function. The module keeps its class and its forward; :func:`plain` gives back a copy without the
fake quantization (the weights on their grid), which is what the ONNX exporter traces.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from designer.quantization.grid import activation_qparams, bias_on_grid, fake_activation, fake_weight


@dataclass
class LayerQuant:
    """One layer's quantization: weight ``bits`` and ``sparsity``, per-channel weight ``scales``,
    and the (scale, zero point) of its input and output activations (None until calibrated)."""

    bits: int
    sparsity: float
    scales: torch.Tensor
    input: tuple[float, int] | None = None
    output: tuple[float, int] | None = None


class WeightQuant(nn.Module):
    """Parametrization: the weight on its ``bits``-bit grid, zeros where ``mask`` is False."""

    def __init__(self, scales: torch.Tensor, bits: int, mask: torch.Tensor | None):
        super().__init__()
        self.bits = bits
        self.register_buffer("scales", scales.detach().float().clone())
        self.register_buffer("mask", None if mask is None else mask.detach().clone())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.mask is not None:
            weight = weight * self.mask
        return fake_weight(weight, self.scales, self.bits)


class BiasQuant(nn.Module):
    """Parametrization: the bias on the accumulator's grid ``s_x s_c``."""

    def __init__(self, input_scale: float, scales: torch.Tensor):
        super().__init__()
        self.input_scale = input_scale
        self.register_buffer("scales", scales.detach().float().clone())

    def forward(self, bias: torch.Tensor) -> torch.Tensor:
        return bias_on_grid(bias, self.input_scale, self.scales)


class ActivationQuant:
    """A forward (pre-)hook quantizing a layer's input or output at 8 bits (a class, so that
    :func:`plain` can find and drop it)."""

    def __init__(self, scale: float, zero_point: int, where: str):
        self.scale, self.zero_point, self.where = scale, zero_point, where

    def __call__(self, module, args, output=None):
        if self.where == "input":
            return (fake_activation(args[0], self.scale, self.zero_point), *args[1:])
        return fake_activation(output, self.scale, self.zero_point)


def quantize_weights(model: nn.Module, plan: dict[str, LayerQuant], weights: dict[str, torch.Tensor],
                     masks: dict[str, torch.Tensor | None]) -> None:
    """Each planned layer takes its quantized weight (``weights``: on the grid already, GPTQ's or
    nearest) behind a :class:`WeightQuant` that keeps it there while it trains."""
    for name, quant in plan.items():
        module = model.get_submodule(name)
        with torch.no_grad():
            module.weight.copy_(weights[name])
        parametrize.register_parametrization(module, "weight", WeightQuant(quant.scales, quant.bits, masks.get(name)))


@torch.no_grad()
def calibrate_activations(model: nn.Module, plan: dict[str, LayerQuant], inputs: torch.Tensor,
                          batch_size: int = 64) -> None:
    """The range of every planned layer's input and output on ``inputs`` (weights quantized,
    activations float), its (scale, zero point) into the plan; then the activation hooks and the
    bias grid on the model."""
    ranges: dict[tuple[str, str], list[float]] = {}

    def observe(name: str, where: str):
        def hook(module, args, output=None):
            x = args[0] if where == "input" else output
            lo, hi = ranges.setdefault((name, where), [0.0, 0.0])
            ranges[(name, where)] = [min(lo, float(x.min())), max(hi, float(x.max()))]
        return hook

    handles = []
    for name in plan:
        module = model.get_submodule(name)
        handles.append(module.register_forward_pre_hook(observe(name, "input")))
        handles.append(module.register_forward_hook(observe(name, "output")))
    model.eval()
    try:
        for start in range(0, len(inputs), batch_size):
            model(inputs[start:start + batch_size])
    finally:
        for handle in handles:
            handle.remove()
    for name, quant in plan.items():
        module = model.get_submodule(name)
        quant.input = activation_qparams(*ranges[(name, "input")])
        quant.output = activation_qparams(*ranges[(name, "output")])
        module.register_forward_pre_hook(ActivationQuant(*quant.input, "input"))
        module.register_forward_hook(ActivationQuant(*quant.output, "output"))
        if module.bias is None:  # the integer kernel adds an int32 bias: zeros, so the file and module agree
            module.bias = nn.Parameter(torch.zeros(module.weight.shape[0], device=module.weight.device))
        _fit_bias(module, quant)
        parametrize.register_parametrization(module, "bias", BiasQuant(quant.input[0], quant.scales))


def _fit_bias(module: nn.Module, quant: LayerQuant) -> None:
    """Widen the weight scale of a channel whose bias would overflow int32 on the grid s_x s_c (a
    channel with tiny weights and a large bias, as BatchNorm folding leaves them): its weights
    are re-rounded on the wider grid (ONNX Runtime's quantizer does the same)."""
    needed = module.bias.detach().abs().cpu().float() / (quant.input[0] * (2 ** 31 - 1) * 0.5)
    if bool((needed > quant.scales).any()):
        quant.scales = torch.maximum(quant.scales, needed)
        module.parametrizations.weight[0].scales.copy_(quant.scales)


def plain(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with no fake quantization: each weight and bias the value on its grid,
    a plain parameter; no activation hooks. What the ONNX exporter traces."""
    copied = copy.deepcopy(model)
    for module in copied.modules():
        if parametrize.is_parametrized(module):
            values = {t: getattr(module, t).detach().clone() for t in module.parametrizations}
            # not parametrize.remove_parametrizations: it deletes the property from the module's
            # class, which a deep copy shares with the original (the original would lose its weight)
            module.__class__ = type(module).__bases__[0]
            del module._modules["parametrizations"]
            for name, value in values.items():
                module.register_parameter(name, nn.Parameter(value))
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for key in [k for k, h in hooks.items() if isinstance(h, ActivationQuant)]:
                del hooks[key]
    return copied
