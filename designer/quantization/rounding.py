r"""How a layer's weights reach their grid: to the nearest point, or GPTQ's reconstruction.

GPTQ (Frantar et al., ICLR 2023; OBQ in Optimal Brain Compression, NeurIPS 2022) quantizes the
columns of a layer's weight one at a time and moves the columns not yet quantized to absorb the
error, minimising the layer's output error on the calibration data, the same objective as
pruning's OBS (H = X X^T, :mod:`designer.pruning.hessian`):

    min_{q} (q - w) H (q - w)^T   row by row, q on the grid (1) of :mod:`designer.quantization.grid`

With U the upper Cholesky factor of H^{-1} (damped as :func:`designer.pruning.obs.damped`), for
column j in order:

    q_j = round(w_j),   e = (w_j - q_j) / U_jj,   w_{j+1:} <- w_{j+1:} - e U_{j, j+1:}            (3)

applied ``block`` columns at a time (the update of later blocks as one matrix product). A weight
a mask removes is "quantized" to 0 by (3), so the same pass prunes and quantizes (SparseGPT's
joint mode). As for OBS, each row keeps GPTQ's result only where its output error, measured
with the undamped H, is at most nearest rounding's: by construction reconstruction never raises
a layer's output error over rounding to nearest. Rounding rules are objects (Torch-Pruning's
criteria are) passed to :func:`designer.quantization.quantize.quantize_model`.
"""

from __future__ import annotations

import torch

from designer.pruning.obs import row_groups, damped_inverse, row_errors
from designer.quantization.grid import codes, levels


class Rounding:
    """A rule taking a layer's weight to its grid: :meth:`round` returns the quantized weight
    (values ``s_c q``, zeros where ``mask`` is False). ``needs_hessian``: it reads the layer's H."""

    name: str
    needs_hessian: bool = False

    def round(self, weight: torch.Tensor, scales: torch.Tensor, bits: int, mask: torch.Tensor | None = None,
              hessian: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class Nearest(Rounding):
    """Every weight to its nearest grid point (round to nearest, ties to even)."""

    name = "nearest"

    def round(self, weight, scales, bits, mask=None, hessian=None):
        w = weight.detach() if mask is None else weight.detach() * mask
        shape = (-1,) + (1,) * (w.dim() - 1)
        return codes(w, scales, bits) * scales.reshape(shape)


class GPTQ(Rounding):
    """(3) on each group of H, ``block`` columns at a time; ``damp`` as OBS's."""

    name = "gptq"
    needs_hessian = True

    def __init__(self, damp: float = 0.01, block: int = 128):
        self.damp, self.block = damp, block

    def round(self, weight, scales, bits, mask=None, hessian=None):
        if hessian is None:
            raise ValueError("gptq: needs the layer's H (designer.pruning.hessian)")
        rows = weight.detach().reshape(weight.shape[0], -1).to("cpu", torch.float64)
        keep = torch.ones_like(rows, dtype=torch.bool) if mask is None else mask.reshape(rows.shape).to("cpu")
        s = scales.detach().to("cpu", torch.float64).unsqueeze(1)
        plain = codes(rows * keep, s.squeeze(1), bits) * s
        out = plain.clone()
        for where, h in row_groups(rows, hessian):
            fitted = self._rows(rows[where], keep[where], s[where], h, bits)
            better = row_errors(fitted - rows[where], h) <= row_errors(plain[where] - rows[where], h)
            out[where] = torch.where(better.unsqueeze(1), fitted, plain[where])
        return out.reshape(weight.shape).to(weight.device, weight.dtype)

    def _rows(self, w: torch.Tensor, keep: torch.Tensor, s: torch.Tensor, h: torch.Tensor, bits: int) -> torch.Tensor:
        """(3) on rows ``w`` sharing H: the quantized rows."""
        w = w.clone()
        q_max = levels(bits)
        u = torch.linalg.cholesky(damped_inverse(h, self.damp), upper=True)
        out = torch.zeros_like(w)
        side = w.shape[1]
        for start in range(0, side, self.block):
            end = min(start + self.block, side)
            errors = torch.zeros(w.shape[0], end - start, dtype=w.dtype)
            for j in range(start, end):
                column = w[:, j]
                q = torch.clamp(torch.round(column / s[:, 0]), -q_max, q_max) * s[:, 0] * keep[:, j]
                out[:, j] = q
                e = (column - q) / u[j, j]
                w[:, j:end] -= e.unsqueeze(1) * u[j, j:end].unsqueeze(0)
                errors[:, j - start] = e
            w[:, end:] -= errors @ u[start:end, end:]
        return out


ROUNDINGS = {"gptq": GPTQ, "nearest": Nearest}


def rounding_of(rounding: Rounding | str) -> Rounding:
    """A rounding rule from an object or its name (:data:`ROUNDINGS`)."""
    if isinstance(rounding, Rounding):
        return rounding
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding: one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    return ROUNDINGS[rounding]()
