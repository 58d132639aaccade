r"""The integer grids: weights symmetric per output channel, activations asymmetric per tensor.

A layer's weight at ``b`` bits (narrow range, as ONNX Runtime's and TensorRT's int8 kernels take
it, and as GPTQ and HAWQ-V3 quantize) is, row ``c`` by row,

    q_c = clamp(round(w_c / s_c), -Q_b, Q_b),   s_c = max|w_c| / Q_b,   Q_b = 2^(b-1) - 1,   w_c ~ s_c q_c   (1)

and an activation tensor at 8 bits (unsigned, its calibrated range [lo, hi] widened to hold 0 so
that zero is exact, as ONNX's QuantizeLinear requires of padding) is

    q = clamp(round(x / s) + z, 0, 255),   s = (hi - lo) / 255,   z = round(-lo / s)             (2)

A layer's bias is stored as int32 on the grid ``s_x s_c`` (the accumulator's): what ONNX
Runtime's integer convolution adds. :func:`fake_weight` and :func:`fake_activation` compute (1)
and (2) with torch's ``fake_quantize_*`` ops, whose gradient is the straight-through
estimator, so a module quantized this way still trains (quantization-aware fine-tuning).
"""

from __future__ import annotations

import torch

WEIGHT_BITS = (8, 6, 4, 3, 2)  # the widths a layer may take
ACTIVATION_BITS = 8


def check_bits(bits, option: str = "bits") -> tuple[int, ...]:
    """``bits`` as a tuple of distinct widths, each one of :data:`WEIGHT_BITS` (2 to 8)."""
    values = (bits,) if isinstance(bits, int) else tuple(bits)
    if not values:
        raise ValueError(f"{option}: give at least one bit-width ({', '.join(map(str, WEIGHT_BITS))})")
    for b in values:
        if isinstance(b, bool) or not isinstance(b, int) or b not in WEIGHT_BITS:
            raise ValueError(f"{option}: a weight bit-width is one of {', '.join(map(str, WEIGHT_BITS))}, got {b!r}")
    return tuple(sorted(set(values), reverse=True))


def levels(bits: int) -> int:
    """Q_b of (1): the largest code of a symmetric narrow ``bits``-bit grid."""
    return 2 ** (bits - 1) - 1


def storage_bits(bits: int) -> int:
    """Bits one weight takes in the ONNX file: packed INT4 up to 4 bits, INT8 above."""
    return 4 if bits <= 4 else 8


def weight_scales(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """s_c of (1), one per output channel (a row that is all zero gets 1: its codes are 0)."""
    peak = weight.detach().reshape(weight.shape[0], -1).abs().amax(dim=1)
    return torch.where(peak > 0, peak / levels(bits), torch.ones_like(peak))


def codes(weight: torch.Tensor, scales: torch.Tensor, bits: int) -> torch.Tensor:
    """q of (1), as integers in a float tensor shaped like ``weight``."""
    shape = (-1,) + (1,) * (weight.dim() - 1)
    q = levels(bits)
    return torch.clamp(torch.round(weight / scales.reshape(shape)), -q, q)


def nearest(weight: torch.Tensor, scales: torch.Tensor, bits: int) -> torch.Tensor:
    """``weight`` rounded to the nearest point of its grid (1)."""
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return codes(weight, scales, bits) * scales.reshape(shape)


def fake_weight(weight: torch.Tensor, scales: torch.Tensor, bits: int) -> torch.Tensor:
    """(1) with the straight-through gradient."""
    q = levels(bits)
    zero = torch.zeros(len(scales), dtype=torch.int32, device=weight.device)
    return torch.fake_quantize_per_channel_affine(weight, scales.to(weight.device, torch.float32), zero, 0, -q, q)


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """(s, z) of (2) for a calibrated range [lo, hi]."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / (2 ** ACTIVATION_BITS - 1)
    if scale <= 0:  # a tensor that was always zero
        return 1.0, 0
    return scale, int(min(255, max(0, round(-lo / scale))))


def fake_activation(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """(2) with the straight-through gradient."""
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 2 ** ACTIVATION_BITS - 1)


def bias_on_grid(bias: torch.Tensor, input_scale: float, scales: torch.Tensor) -> torch.Tensor:
    """The bias as the int32 accumulator holds it (grid ``s_x s_c``), straight-through."""
    step = (input_scale * scales).to(bias.device, bias.dtype)
    return bias + (torch.round(bias / step) * step - bias).detach()
