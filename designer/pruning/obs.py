"""Optimal Brain Surgeon reconstruction: after a mask is chosen, the kept weights of each row are
re-fitted so that the layer's output on the calibration data moves as little as possible.

With H the layer's Hessian (:mod:`designer.pruning.hessian`, equation 1 there), a row ``w`` and
its kept set K, the best kept weights solve the least-squares problem

    min_{w'} (w' - w) H (w' - w)^T   s.t.  w'_i = 0 for i not in K                            (2)
    =>  w'_K = w H_{:,K} (H_{K,K})^{-1}                                                       (3)

(Frantar et al., Optimal Brain Compression, NeurIPS 2022: ExactOBS reaches (3) by removing one
weight at a time). Two ways here:

* **shared** (every row keeps the same set, as when input channels are cut): (3) as one solve
  with a right-hand side per row.
* **exact** (narrow rows: ``rows x side^3`` up to :data:`EXACT_WORK`): (3) solved row by row.
* **iterative** (wide rows): conjugate gradients on (2) over each row's kept weights, every row
  at once, from the masked weights, preconditioned by H's diagonal: one ``rows x side x side``
  product a step instead of ``rows x |K|^3`` (the exact solve of a 512 x 4608 conv at 50%
  sparsity: 512 systems of side 2304). SparseGPT's left-to-right removal through the Cholesky
  factor of H^-1 (Frantar and Alistarh, ICML 2023) was tried as the start: on 512 x 4608 it cost
  2.7 s, 14 CG steps, and CG from the masked weights converged as fast without it.

H is damped, ``H + damp mean(diag H) I`` (an input that is always zero makes H singular, and
its diagonal is set to 1 first), and each row is finally kept reconstructed only where
its error (2), measured with the undamped H, is at most that of the plain masked row: by
construction reconstruction never raises a layer's output error over magnitude's weights under
the same mask. The *saliency* that chooses a mask is OBS's: ``w_i^2 / [H^-1]_ii``, the error of
removing ``w_i`` alone with the others re-fitted: on layers up to :data:`GREEDY_WORK`, along
ExactOBS's greedy path (5) (one weight at a time, the rest re-fitted after each), on wider ones
once, from the dense weights (the report says which, per layer).
"""

from __future__ import annotations

import torch

EXACT_WORK = 2e9  # rows x side^3 up to which (3) is solved exactly, row by row
# rows x side^3 up to which the mask is ExactOBS's greedy path (5) rather than the one-shot saliency:
# on one thread of this 2-core machine, the other core busy, 32 x 288 (0.76e9) takes 0.3 s and
# 64 x 576 (12e9) 4.6 s (memory-bound: each removal rewrites every row's H^-1); above the bound
# it would add minutes to a ResNet-18 database (128 x 1152: about 16 x 4.6 s per layer)
GREEDY_WORK = 2e9
# conjugate-gradient steps toward (3) on wide rows: measured on a 300-wide layer with correlated
# inputs, 4 steps end 0.13% above the optimum, 6 steps 0.01%, 8 steps 0.001%
CG_STEPS = 8


def row_groups(weight: torch.Tensor, hessian: torch.Tensor) -> list[tuple[slice, torch.Tensor]]:
    """Per group of H: the rows of ``weight`` (as (out, side)) it serves."""
    groups = hessian.shape[0]
    rows = weight.shape[0] // groups
    return [(slice(g * rows, (g + 1) * rows), hessian[g]) for g in range(groups)]


def damped(h: torch.Tensor, damp: float) -> torch.Tensor:
    """``h + damp mean(diag h) I``, with a dead input's diagonal (always zero) set to 1."""
    h = h.clone()
    diagonal = torch.diagonal(h)
    dead = diagonal == 0
    diagonal[dead] = 1.0
    diagonal += damp * float(diagonal.mean())
    return h


def damped_inverse(h: torch.Tensor, damp: float) -> torch.Tensor:
    """The damped H's inverse, through its Cholesky factor."""
    return torch.cholesky_inverse(torch.linalg.cholesky(damped(h, damp)))


def saliency(weight: torch.Tensor, hessian: torch.Tensor, damp: float = 0.01) -> torch.Tensor:
    """OBS's ``w_i^2 / [H^-1]_ii``, shaped like ``weight``: larger is kept first."""
    rows = weight.detach().reshape(weight.shape[0], -1).to(torch.float64)
    out = torch.empty_like(rows)
    for where, h in row_groups(rows, hessian):
        inverse_diagonal = torch.diagonal(damped_inverse(h, damp))
        out[where] = rows[where] ** 2 / inverse_diagonal
    return out.reshape(weight.shape).to(weight.dtype)


def _exact(w: torch.Tensor, mask: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """(3) row by row."""
    out = torch.zeros_like(w)
    for i in range(w.shape[0]):
        kept = torch.nonzero(mask[i]).flatten()
        if len(kept) == 0:
            continue
        right = h[kept] @ w[i]  # H_{K,:} w^T = (w H_{:,K})^T
        out[i, kept] = torch.linalg.solve(h[kept][:, kept], right)
    return out


def _greedy_rows(w: torch.Tensor, h_inverse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ExactOBS on rows ``w`` (rows, side) sharing ``h_inverse``: one weight removed at a time
    per row, the one whose removal (the others re-fitted) costs least, ``w_q^2 / [H^-1]_qq``;
    then the kept weights and H^-1 updated (eliminating q):

        w <- w - (w_q / [H^-1]_qq) [H^-1]_{:,q},    H^-1 <- H^-1 - [H^-1]_{:,q} [H^-1]_{q,:} / [H^-1]_qq   (5)

    Returns each weight's cost at its removal, made non-decreasing along its row's path
    (OBC's global selection: a layer keeps the weights whose costs are largest), and the step
    at which it was removed."""
    rows, side = w.shape
    w, inverse = w.clone(), h_inverse.expand(rows, side, side).clone()
    removed = torch.zeros_like(w, dtype=torch.bool)
    cost, order = torch.empty_like(w), torch.empty(w.shape, dtype=torch.long)
    running = torch.zeros(rows, dtype=w.dtype)
    every = torch.arange(rows)
    for step in range(side):
        diagonal = torch.diagonal(inverse, dim1=1, dim2=2).clamp_min(1e-300)
        score = (w ** 2 / diagonal).masked_fill(removed, float("inf"))
        q = score.argmin(dim=1)
        running = torch.maximum(running, score[every, q])
        cost[every, q], order[every, q] = running, step
        column = inverse[every, :, q]  # (rows, side)
        pivot = diagonal[every, q]
        w -= (w[every, q] / pivot).unsqueeze(1) * column
        inverse.baddbmm_(column.unsqueeze(2), (column / pivot.unsqueeze(1)).unsqueeze(1), alpha=-1)  # one pass
        removed[every, q] = True
        w.masked_fill_(removed, 0.0)
    return cost, order


def greedy_saliency(weight: torch.Tensor, hessian: torch.Tensor, damp: float = 0.01,
                    chunk_bytes: float = 2 ** 28) -> torch.Tensor:
    """ExactOBS's (5) for every row, shaped like ``weight``: larger is kept first (the order of a
    layer-wide top-k is OBC's). Work rows x side^3, memory ``chunk_bytes`` (rows at a time)."""
    rows = weight.detach().reshape(weight.shape[0], -1).to("cpu", torch.float64)
    out = torch.empty_like(rows)
    for where, h in row_groups(rows, hessian):
        inverse = damped_inverse(h, damp)
        w = rows[where]
        step = max(1, int(chunk_bytes // (8 * w.shape[1] ** 2)))
        out[where] = torch.cat([_greedy_rows(w[i:i + step], inverse)[0] for i in range(0, w.shape[0], step)])
    return out.reshape(weight.shape).to(weight.dtype)


def _shared(w: torch.Tensor, kept: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """(3) when every row keeps the same set (a channel cut): one solve, every row a right-hand side."""
    out = torch.zeros_like(w)
    columns = torch.nonzero(kept).flatten()
    if len(columns):
        out[:, columns] = torch.linalg.solve(h[columns][:, columns], h[columns] @ w.T).T
    return out


def _refine(z: torch.Tensor, w: torch.Tensor, mask: torch.Tensor, h: torch.Tensor,
            steps: int = CG_STEPS) -> torch.Tensor:
    """Conjugate gradients on (2) restricted to each row's kept weights, every row at once (one
    ``rows x side x side`` product a step), from ``z``: the normal equations
    ``[z H]_K = [w H]_K``, preconditioned by H's diagonal. Converges to (3)."""
    m = mask.to(z.dtype)
    inverse_diagonal = m / torch.diagonal(h).clamp_min(1e-300)
    residual = m * ((w - z) @ h)
    direction = inverse_diagonal * residual
    rho = (residual * direction).sum(dim=1)
    for _ in range(steps):
        product = m * (direction @ h)
        curvature = (direction * product).sum(dim=1)
        alpha = torch.where(curvature > 0, rho / curvature.clamp_min(1e-300), torch.zeros_like(rho))
        z = z + alpha.unsqueeze(1) * direction
        residual = residual - alpha.unsqueeze(1) * product
        preconditioned = inverse_diagonal * residual
        new = (residual * preconditioned).sum(dim=1)
        beta = torch.where(rho > 0, new / rho.clamp_min(1e-300), torch.zeros_like(new))
        direction, rho = preconditioned + beta.unsqueeze(1) * direction, new
    return z * mask


def row_errors(delta: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """(2) per row: ``delta H delta^T``."""
    return ((delta @ h) * delta).sum(dim=1)


def reconstruct(weight: torch.Tensor, mask: torch.Tensor, hessian: torch.Tensor, damp: float = 0.01) -> torch.Tensor:
    """``weight`` under ``mask`` with its kept weights re-fitted (module docstring); zeros where
    ``mask`` is False, the shape and dtype of ``weight``."""
    rows = weight.detach().reshape(weight.shape[0], -1).to("cpu", torch.float64)
    keep = mask.reshape(rows.shape).to("cpu")
    out = rows * keep
    for where, h in row_groups(rows, hessian):
        w, m = rows[where], keep[where]
        hd = damped(h, damp)
        if bool((m == m[:1]).all()):
            fitted = _shared(w, m[0], hd)
        elif w.shape[0] * float(w.shape[1]) ** 3 <= EXACT_WORK:
            fitted = _exact(w, m, hd)
        else:
            fitted = _refine(w * m, w, m, hd)
        better = row_errors(fitted - w, h) <= row_errors(w * m - w, h)
        out[where] = torch.where(better.unsqueeze(1), fitted, w * m)
    return out.reshape(weight.shape).to(weight.device, weight.dtype)


def relative_error(weight: torch.Tensor, new: torch.Tensor, hessian: torch.Tensor) -> float:
    """The layer's output error (2) summed over rows, over its output energy ``w H w^T``: how far
    the layer's outputs on the calibration data moved, as a fraction."""
    rows = weight.detach().reshape(weight.shape[0], -1).to("cpu", torch.float64)
    delta = new.detach().reshape(rows.shape).to("cpu", torch.float64) - rows
    moved = energy = 0.0
    for where, h in row_groups(rows, hessian):
        moved += float(row_errors(delta[where], h).sum())
        energy += float(row_errors(rows[where], h).sum())
    return moved / energy if energy > 0 else 0.0


def bias_shift(weight: torch.Tensor, new: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """How far each output's mean over the calibration data moves when ``weight`` becomes ``new``:
    ``(new - weight) mu`` per row, ``mu`` the mean input vector of its group (OBC's statistics
    correction subtracts it from the bias)."""
    rows = weight.detach().reshape(weight.shape[0], -1).to("cpu", torch.float64)
    delta = new.detach().reshape(rows.shape).to("cpu", torch.float64) - rows
    per_group = rows.shape[0] // mean.shape[0]
    shift = torch.stack([delta[g * per_group:(g + 1) * per_group] @ mean[g] for g in range(mean.shape[0])])
    return shift.reshape(-1)


def reconstruction_error(weight: torch.Tensor, mask: torch.Tensor, new: torch.Tensor,
                         hessian: torch.Tensor, criterion=None) -> dict[str, float]:
    """The layer's relative output error with the plain mask (``masked``) and with the weights the
    criterion kept (``kept``), ``greedy`` 1 where the mask followed ExactOBS's path (5), 0 where
    the one-shot saliency chose it, and ``dead_inputs``: inputs that are zero on every
    calibration sample (H singular there: damped, see :func:`damped`): what a round's report
    carries per layer."""
    greedy = getattr(criterion, "greedy", None)
    return {"masked": relative_error(weight, weight * mask, hessian), "kept": relative_error(weight, new, hessian),
            "greedy": float(greedy(weight, hessian)) if greedy is not None else 0.0,
            "dead_inputs": float((torch.diagonal(hessian, dim1=1, dim2=2) == 0).sum())}
