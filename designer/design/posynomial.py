"""A block's budget costs as a posynomial in its widths, fitted exactly; the stem's and tail's.

Budget costs are (compute, size) under the problem's ``counting``
(:data:`designer.costs.COUNTINGS`): (MACs, params) by default, TinyNAS's (FLOPs, model size)
with ``counting="tinynas"``. For a block of a given family, kernel, stride, resolution and
position (first in its stage or not), every cost the design models use is a polynomial with
non-negative integer coefficients
in (c_in, c, b) = (input width, output width, inner width) over the monomials
:data:`MONOMIALS` (squeeze-excite layers left out: see each user). The coefficients are
recovered exactly by least squares on integer points and checked there, so a family whose
costs leave this form is refused with a clear error instead of being mis-modelled. The exact
MILP (:mod:`designer.design.milp`, its gain rates) and the convex relaxation
(:mod:`designer.design.relax`) both read this table.
"""

from __future__ import annotations

import numpy as np

from designer.costs import block_budget, conv_bn_act_budget
from designer.design.problem import DesignProblem
from designer.families import BlockFamily

# Monomials a block's costs are made of: exponents of (c_in, c, b); (1, 0, 0) is TinyNAS's
# shortcut average pool, counted per input element.
MONOMIALS = [(1, 0, 1), (1, 1, 0), (0, 0, 2), (0, 1, 1), (0, 0, 1), (0, 1, 0), (0, 0, 0), (1, 0, 0)]


def _block_cost(problem: DesignProblem, blocks: BlockFamily, c_in: int, c: int, b: int, k: int, stride: int,
                res: int, first: bool) -> np.ndarray:
    return np.array(block_budget(blocks, c_in, c, b, k, stride, res, first, problem.counting,
                                 squeeze_excite=False), dtype=float)


def stem_budget(problem: DesignProblem, width: int) -> tuple[int, int]:
    """(compute, size) of the stem at ``width`` channels."""
    return conv_bn_act_budget(problem.in_channels, width, problem.stem_kernel, problem.strides[0],
                              problem.resolution, problem.counting)


def tail_budget(problem: DesignProblem, channels: int) -> tuple[int, int]:
    """(compute, size) of the head conv (if any) and the classifier after a last stage of
    ``channels`` (TinyNAS's counting leaves the classifier out)."""
    res = problem.resolutions()[-1]
    compute = size = 0
    if problem.head is not None:
        compute, size = conv_bn_act_budget(channels, problem.head, 1, 1, res, problem.counting)
        channels = problem.head
    if problem.counting == "mpdesign":
        compute += channels * problem.num_classes
        size += channels * problem.num_classes + problem.num_classes
    return compute, size


def block_posynomial(problem: DesignProblem, k: int, stride: int, res: int, first: bool,
                     blocks: BlockFamily | None = None) -> np.ndarray:
    """Coefficients (MACs, params) of each monomial in MONOMIALS for a block of ``blocks``
    (default: the problem's ``family``), fitted exactly on integer points."""
    blocks = blocks or problem.blocks
    points = [(ci, c, b) for ci in (1, 2, 3) for c in (1, 2, 5) for b in (4, 8, 12)]
    design = np.array([[ci ** e0 * c ** e1 * b ** e2 for e0, e1, e2 in MONOMIALS] for ci, c, b in points], float)
    targets = np.array([_block_cost(problem, blocks, ci if first else c, c, b, k, stride, res, first)
                        for ci, c, b in points])
    coefficients, *_ = np.linalg.lstsq(design, targets, rcond=None)
    coefficients = np.rint(coefficients)  # layer costs have integer coefficients (channel counts, r^2, k^2)
    if not np.array_equal(design @ coefficients, targets):
        raise ValueError(f"{blocks.name} block costs are not a polynomial in the assumed monomials")
    if (coefficients < 0).any():
        raise ValueError("a block cost has a negative coefficient: not a posynomial")
    return coefficients  # shape (len(MONOMIALS), 2)


