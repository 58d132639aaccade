r"""What the allocation of bits is held to, and the allocation itself (a multiple-choice knapsack).

Each layer ``l`` takes one option ``(b_l, s_l)`` (bits, sparsity); the allocation solves

    minimise  sum_l D_l(b_l, s_l)   subject to   sum_l c_l(b_l, s_l) <= B                       (4)

by :func:`solvers.knapsack.solve_dp` (the pruning allocation's DP: costs rounded up to bins, so
every answer holds the real budget), with ``D_l`` the layer's measured distortion
(:mod:`designer.quantization.curves`) and ``c_l`` the budget's cost of the option:

* :class:`AverageBits` — the weights' mean bit-width: ``c = n_l ((1 - s) b + [s > 0])`` (a sparse
  layer also stores one mask bit per weight), ``B = bits x sum_l n_l`` (HAWQ-V3's model size).
* :class:`ModelSize` — bytes of the quantized layers as the ONNX file stores them: codes packed
  at 4 bits up to 4 bits and 8 above (ONNX has INT4 and INT8 tensors, nothing between), one float32
  scale and one zero point per output channel, and the int32 bias; sparsity does not shrink a
  dense file. Recounted on the written file (:func:`designer.quantization.onnx_file.payload_bytes`).
* :class:`BOPs` — bit operations: ``c = (1 - s) MACs_l b 8`` (8-bit activations; HAWQ-V3's BOPs).

Budgets are objects passed in (Torch-Pruning's way); ``option`` is the command line's name for
each, so an error names what the user typed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from designer.quantization.curves import LayerOptions
from designer.quantization.grid import ACTIVATION_BITS, storage_bits
from solvers.knapsack import solve_dp
from solvers.result import SolveResult, Status


@dataclass
class Budget:
    """A limit on the sum of the layers' costs: :meth:`cost` of one option, :meth:`limit` of all
    (``value`` itself unless a budget says otherwise); ``option`` names it in errors."""

    value: float
    option = ""
    unit = ""

    def __post_init__(self):
        if (isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or not math.isfinite(self.value)
                or self.value <= 0):
            raise ValueError(f"{self.option}: must be a positive number, got {self.value!r}")

    def cost(self, layer: LayerOptions, bits: int, sparsity: float) -> float:
        raise NotImplementedError

    def limit(self, table: list[LayerOptions]) -> float:
        return float(self.value)


def weight_bits(layer: LayerOptions, bits: int, sparsity: float) -> float:
    """The bits a layer's weights take at an option: kept weights x bits, plus one mask bit per
    weight when it is sparse (what :class:`AverageBits` counts and the report's average is)."""
    return layer.weights * ((1 - sparsity) * bits + (1 if sparsity > 0 else 0))


class AverageBits(Budget):
    """The weights' mean bits: ``value`` bits per weight."""

    option = "--bits-avg"
    unit = "bits per weight"

    def limit(self, table):
        return self.value * sum(layer.weights for layer in table)

    def cost(self, layer, bits, sparsity):
        return weight_bits(layer, bits, sparsity)


class ModelSize(Budget):
    """The quantized layers' bytes in the file: ``value`` bytes (:func:`layer_bytes`)."""

    option = "--size"
    unit = "bytes"

    def cost(self, layer, bits, sparsity):
        return layer_bytes(layer.weights, layer.channels, bits)


class BOPs(Budget):
    """Bit operations: ``value`` BOPs."""

    option = "--bops"
    unit = "BOPs"

    def cost(self, layer, bits, sparsity):
        return (1 - sparsity) * layer.macs * bits * ACTIVATION_BITS


def layer_bytes(weights: int, channels: int, bits: int) -> int:
    """What the ONNX file holds for one quantized layer: the codes (packed two to a byte at 4
    bits), the channels' float32 scales and zero points (one byte each, half at 4 bits), the
    int32 bias and its float32 scales ``s_x s_c`` (always written: a layer without a bias gets
    zeros, as the integer kernels take one)."""
    width = storage_bits(bits)
    return math.ceil(weights * width / 8) + 4 * channels + math.ceil(channels * width / 8) + 8 * channels


def smallest(budget: Budget, table: list[LayerOptions]) -> float:
    """The least total the layers reach (each at its cheapest option)."""
    return sum(min(budget.cost(layer, b, s) for b, s in zip(layer.bits, layer.sparsity)) for layer in table)


def check_budget(budget: Budget, table: list[LayerOptions]) -> None:
    """Refuse, before any measurement, a budget below what the cheapest options reach."""
    limit = budget.limit(table)
    least = smallest(budget, table)
    if least > limit * (1 + 1e-12):
        if isinstance(budget, AverageBits):
            least_avg = least / sum(layer.weights for layer in table)
            raise ValueError(f"{budget.option}: {budget.value:g} is below the smallest average the options reach, "
                             f"{least_avg:.4f} bits per weight (every layer at its fewest bits)")
        raise ValueError(f"{budget.option}: {limit:,.0f} {budget.unit} is below the smallest the options "
                         f"reach, {least:,.0f} {budget.unit} (every layer at its fewest bits)")


@dataclass
class BitAllocation:
    """The option each layer takes (index into its options), the summed predicted distortion,
    the budget's total cost and limit, and the solver's result as it gave it."""

    choice: dict[str, int]
    distortion: float
    cost: float
    limit: float
    solve: SolveResult


def allocate_bits(curves: list[LayerOptions], budget: Budget, bins: int | None = 20_000) -> BitAllocation:
    """(4) by the binned DP (module doc); ``bins=None``: the exact integer state (whole costs)."""
    check_budget(budget, curves)
    limit = budget.limit(curves)
    costs = [[budget.cost(layer, b, s) for b, s in zip(layer.bits, layer.sparsity)] for layer in curves]
    losses = [layer.distortion for layer in curves]
    # the exact state (bins=None) counts whole units: a total of whole costs within the limit is within its floor
    result = solve_dp(costs, losses, math.floor(limit) if bins is None else limit, bins=bins)
    if result.status == Status.INFEASIBLE:  # check_budget refused this before; kept for a direct caller
        raise ValueError(f"{budget.option}: {result.message}")
    picks = result.solution
    return BitAllocation({layer.name: i for layer, i in zip(curves, picks)}, float(result.objective),
                         sum(c[i] for c, i in zip(costs, picks)), limit, result)
