"""What a block family is, in one place: the protocol every family module implements, the
cost record of one layer, and the layer arithmetic families share (no torch: see layers.py).

A family answers, for one block taking ``c_in`` channels to ``out`` with inner width ``btn``,
kernel ``k``, ``stride``, at input resolution ``in_res`` (``first``: the block opens its
stage):

* its conv/linear layers and elementwise op count (:meth:`BlockFamily.layers`), which the
  cost model sums and the MILP's posynomial fit reads (MACs and params must be polynomials
  in (c_in, out, btn) over :data:`designer.design.posynomial.MONOMIALS`, affine in c_in);
* DeepMAD's log unit width and layer count (:meth:`BlockFamily.log_width`,
  ``layers_per_block``), and ``btn_exponent``, the power of ``btn`` in the unit width, which
  the relaxations use;
* the design space defaults (``defaults``) and how many leading stages the authors' depth
  penalty leaves out (``depth_penalty_skips``);
* its ``nn.Module`` (:meth:`BlockFamily.module`), the zero-init of its residual branch
  (:meth:`BlockFamily.zero_init`) and how its inner channels shrink (:meth:`BlockFamily.shrink`),
  which live beside it in ``<family>_blocks.py`` (``blocks``): the cost arithmetic here and in
  the family modules loads no torch, so the mathematical-programming side starts fast;
* its TinyNAS class name, or None where TinyNAS has none.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any


def down(res: int, stride: int) -> int:
    """Output resolution of a padded conv: ceil(res / stride)."""
    return -(-res // stride)


def se_channels(btn: int) -> int:
    """Squeeze-excite width: a quarter of the expanded width (at least 1)."""
    return max(1, btn // 4)


@dataclass(frozen=True)
class Layer:
    """One conv or linear layer; ``name`` is the module path in the built network."""

    name: str
    kind: str  # "conv" or "linear"
    c_in: int
    c_out: int
    k: int
    stride: int
    groups: int
    in_res: int
    out_res: int
    bias: bool = False
    batchnorm: bool = True

    @property
    def weights(self) -> int:
        return self.c_out * (self.c_in // self.groups) * self.k * self.k

    @property
    def params(self) -> int:
        return self.weights + (self.c_out if self.bias else 0) + (2 * self.c_out if self.batchnorm else 0)

    @property
    def macs(self) -> int:
        return self.weights * self.out_res * self.out_res

    @property
    def input_elements(self) -> int:
        return self.c_in * self.in_res * self.in_res

    @property
    def output_elements(self) -> int:
        return self.c_out * self.out_res * self.out_res

    def activation_bytes(self, bytes_per_element: int = 1) -> int:
        return (self.input_elements + self.output_elements) * bytes_per_element


def conv(name: str, c_in: int, c_out: int, k: int, stride: int, in_res: int, groups: int = 1, bias: bool = False,
         batchnorm: bool = True) -> Layer:
    """A padded k x k conv layer record (output resolution from the stride)."""
    return Layer(name, "conv", c_in, c_out, k, stride, groups, in_res, down(in_res, stride), bias, batchnorm)


@dataclass(frozen=True)
class FamilyDefaults:
    """The design space a family is searched over unless the problem says otherwise."""

    btn_ratio: tuple[float, float]  # inner width / out
    kernels: tuple[int, ...]
    effectiveness: float  # rho0, the effectiveness budget
    strides: tuple[int, ...]  # the stem's, then one per stage


class BlockFamily:
    """The protocol (see the module docstring); one instance per family module."""

    name: str
    tinynas_class: str | None = None
    layers_per_block: int
    btn_exponent: int  # W_u = c_in * btn^btn_exponent * k^(2 * kernel_convs) (DeepMAD equation 1)
    kernel_convs: int  # k x k convs whose fan-in counts k^2 in W_u
    depth_penalty_skips: int = 0  # leading stages the authors' depth penalty leaves out
    defaults: FamilyDefaults
    activation: str = "relu"  # also the head conv's, when the last stage is this family (layers.ACTIVATIONS)
    blocks: str  # the module holding the family's torch side: module(), zero_init(), shrink()

    def log_width(self, c_in: int, btn: int, k: int) -> float:
        """log W_u of one block (DeepMAD equation 1)."""
        return math.log(c_in) + self.btn_exponent * math.log(btn) + 2 * self.kernel_convs * math.log(k)

    def layers(self, prefix: str, c_in: int, out: int, btn: int, k: int, stride: int, in_res: int,
               first: bool) -> tuple[list[Layer], int]:
        """The block's conv layers (names are module paths under ``prefix``) and its elementwise
        op count (BN, activations, pooling, SE gating, residual add)."""
        raise NotImplementedError

    def torch_side(self) -> Any:
        """The family's torch module (``blocks``), imported on first use: building, zero-init and
        shrinking need torch; counting and scoring do not."""
        return importlib.import_module(self.blocks)

    def module(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool) -> Any:
        """The block as an ``nn.Module``."""
        return self.torch_side().module(c_in, out, btn, k, stride, first)

    def zero_init(self, block: Any) -> None:
        """Start a residual block as the identity: zero the last BN scale of its residual
        branch (Goyal et al., 2017). Blocks without a residual keep their init."""
        self.torch_side().zero_init(block)

    def shrink(self, block: Any, new: Any, keep: int) -> None:
        """Copy ``block``'s weights into ``new``, a block of the same shape but with ``keep``
        inner channels: the strongest (L1 norm of the filters producing them)."""
        self.torch_side().shrink(block, new, keep)

    def __repr__(self) -> str:
        return f"<block family {self.name!r}>"


def projection_layers(prefix: str, c_in: int, out: int, stride: int, in_res: int) -> tuple[list[Layer], int]:
    """The layers and ops of a :class:`Projection` shortcut."""
    res = down(in_res, stride)
    ops = (c_in * in_res * in_res if stride != 1 else 0) + out * res * res  # average pool, BN
    return [Layer(f"{prefix}.shortcut.conv", "conv", c_in, out, 1, 1, 1, res, res)], ops
