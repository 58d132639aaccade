"""What a block family is, in one place: the protocol every family module implements, the
cost record of one layer, and the torch building blocks families share.

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
  (:meth:`BlockFamily.zero_init`) and how its inner channels shrink (:meth:`BlockFamily.shrink`);
* its TinyNAS class name, or None where TinyNAS has none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


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
    activation: type[nn.Module] = nn.ReLU  # also the head conv's, when the last stage is this family

    def log_width(self, c_in: int, btn: int, k: int) -> float:
        """log W_u of one block (DeepMAD equation 1)."""
        return math.log(c_in) + self.btn_exponent * math.log(btn) + 2 * self.kernel_convs * math.log(k)

    def layers(self, prefix: str, c_in: int, out: int, btn: int, k: int, stride: int, in_res: int,
               first: bool) -> tuple[list[Layer], int]:
        """The block's conv layers (names are module paths under ``prefix``) and its elementwise
        op count (BN, activations, pooling, SE gating, residual add)."""
        raise NotImplementedError

    def module(self, c_in: int, out: int, btn: int, k: int, stride: int, first: bool) -> nn.Module:
        raise NotImplementedError

    def zero_init(self, block: nn.Module) -> None:
        """Start a residual block as the identity: zero the last BN scale of its residual
        branch (Goyal et al., 2017). Blocks without a residual keep their init."""

    def shrink(self, block: nn.Module, new: nn.Module, keep: int) -> None:
        """Copy ``block``'s weights into ``new``, a block of the same shape but with ``keep``
        inner channels: the strongest (L1 norm of the filters producing them)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<block family {self.name!r}>"


# ---- torch building blocks shared by families and the network ---------------------------
class ConvBNAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = nn.ReLU):
        super().__init__()
        self.add_module("conv", nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(c_out))
        if act is not None:
            self.add_module("act", act(inplace=True))


class Projection(nn.Module):
    """Average pool (when strided) then 1x1 conv and BN (ResNet-D's shortcut)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.pool = (nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                     if stride > 1 else nn.Identity())
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.pool(x)))


def projection_layers(prefix: str, c_in: int, out: int, stride: int, in_res: int) -> tuple[list[Layer], int]:
    """The layers and ops of a :class:`Projection` shortcut."""
    res = down(in_res, stride)
    ops = (c_in * in_res * in_res if stride != 1 else 0) + out * res * res  # average pool, BN
    return [Layer(f"{prefix}.shortcut.conv", "conv", c_in, out, 1, 1, 1, res, res)], ops


# ---- copying the strongest channels (channel pruning) -------------------------------------
def strongest(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the ``n`` largest scores, in their original order."""
    return torch.sort(torch.topk(scores, n).indices).values


def output_strength(conv_module: nn.Conv2d, in_idx: torch.Tensor | None = None) -> torch.Tensor:
    """L1 norm of each output filter (over the kept inputs ``in_idx`` only, when given)."""
    weight = conv_module.weight.detach()
    if in_idx is not None and conv_module.groups == 1:
        weight = weight[:, in_idx]
    return weight.abs().flatten(1).sum(1)


@torch.no_grad()
def take_conv(source: nn.Conv2d, target: nn.Conv2d, out_idx: torch.Tensor | None = None,
              in_idx: torch.Tensor | None = None) -> None:
    weight = source.weight.detach()
    if out_idx is not None:
        weight = weight[out_idx]
    if in_idx is not None and source.groups == 1:
        weight = weight[:, in_idx]
    target.weight.copy_(weight)
    if source.bias is not None:
        target.bias.copy_(source.bias.detach() if out_idx is None else source.bias.detach()[out_idx])


@torch.no_grad()
def take_bn(source: nn.BatchNorm2d, target: nn.BatchNorm2d, idx: torch.Tensor | None = None) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(source, name).detach()
        getattr(target, name).copy_(value if idx is None else value[idx])
    target.num_batches_tracked.copy_(source.num_batches_tracked)


def shrink_inner_pair(block: nn.Module, new: nn.Module, keep: int) -> None:
    """The shrink of blocks whose inner channels are made by ``conv1`` and read by ``conv2``
    (both :class:`ConvBNAct`): keep ``conv1``'s ``keep`` strongest filters, and ``conv2``'s
    inputs from them."""
    inner = strongest(output_strength(block.conv1.conv), keep)
    take_conv(block.conv1.conv, new.conv1.conv, out_idx=inner)
    take_bn(block.conv1.bn, new.conv1.bn, inner)
    take_conv(block.conv2.conv, new.conv2.conv, in_idx=inner)
    take_bn(block.conv2.bn, new.conv2.bn)
