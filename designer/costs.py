"""Closed-form cost model of a :class:`~designer.spec.NetworkSpec`.

Every conv and linear layer of the materialised network (:mod:`designer.network`) is
listed with its shapes (each block family lists its own: :mod:`designer.families`), so that

* ``weights``  = c_out * (c_in / groups) * k^2                     (conv and linear weights)
* ``params``   = weights + bias + 2 * c_out for a following BatchNorm (affine gamma, beta)
* ``macs``     = weights * out_res^2                                 (multiply-accumulates)
* ``activation_bytes`` = (c_in * in_res^2 + c_out * out_res^2) * bytes_per_element

What is counted:

* **MACs are multiply-accumulates of convs and linears only** (one MAC = one multiply
  and one add; FLOPs are about 2 x MACs). BatchNorm, activations, SE gating, residual
  additions and pooling are *not* in ``macs``; they are reported apart as
  ``elementwise_ops`` (one op per element: BN, each activation, the SE multiply, each
  residual add, and one per input element of every pooling), which is what the authors'
  "FLOPs" add on top of the convs.
* **Parameters** are every trainable tensor: conv/linear weights and biases (SE convs and
  the classifier have biases, the others do not) and BatchNorm gamma and beta. BN running
  statistics are buffers, not parameters.
* Resolutions follow padded convs: a stride-s layer maps r to ceil(r / s).

Two countings of the budgets (``COUNTINGS``), each a (compute, size) pair:

* ``"mpdesign"`` (the default): (MACs, params) as above, classifier included.
* ``"tinynas"``: the DeepMAD authors' TinyNAS rules, applied to the network we build, for the
  residual families TinyNAS has (bottleneck: ResK1KXK1, basic: ResKXKX). FLOPs = conv MACs
  + 2 per BatchNorm output element + 1 per activation output element + 1 per input element
  of a shortcut's average pool + 1 per output element of a residual add *that has a
  projection* (TinyNAS does not count the identity adds); no global pool, no classifier.
  Model size = conv weights + BatchNorm gamma and beta, no classifier. In terms of what
  :func:`count` records: FLOPs = MACs - classifier MACs + elementwise ops + BN output
  elements - identity-add elements - global-pool elements; size = params - classifier params.

``tests/test_costs.py`` checks all of this against a recount on the torch module
(``numel`` of its parameters and ``torch.utils.flop_counter.FlopCounterMode``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

COUNTINGS = ("mpdesign", "tinynas")  # how the compute and size budgets are counted (see above)
TINYNAS_FAMILIES = ("bottleneck", "basic")  # families whose blocks TinyNAS counts (ResK1KXK1, ResKXKX)

from designer.families import family
from designer.families.base import BlockFamily, Layer, down
from designer.spec import NetworkSpec


@dataclass
class Costs:
    """Totals of a network; ``layers`` lists every conv and linear layer in order."""

    layers: list[Layer]
    elementwise_ops: int
    bytes_per_element: int = 1
    stage_macs: list[int] = field(default_factory=list)
    stage_params: list[int] = field(default_factory=list)
    identity_add_elements: int = 0  # residual adds without a projection (in elementwise_ops)
    global_pool_elements: int = 0  # the global average pool's input (in elementwise_ops)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def conv_weights(self) -> int:
        return sum(layer.weights for layer in self.layers if layer.kind == "conv")

    @property
    def batchnorm_params(self) -> int:
        return sum(2 * layer.c_out for layer in self.layers if layer.batchnorm)

    @property
    def classifier_params(self) -> int:
        return sum(layer.params for layer in self.layers if layer.kind == "linear")

    @property
    def batchnorm_elements(self) -> int:
        return sum(layer.output_elements for layer in self.layers if layer.batchnorm)

    def budget(self, counting: str = "mpdesign") -> tuple[int, int]:
        """(compute, size) under ``counting`` (the module docstring): (MACs, params) or
        TinyNAS's (FLOPs, model size)."""
        if counting == "mpdesign":
            return self.macs, self.params
        check_counting(counting)
        classifier = [layer for layer in self.layers if layer.kind == "linear"]
        flops = (self.macs - sum(layer.macs for layer in classifier) + self.elementwise_ops + self.batchnorm_elements
                 - self.identity_add_elements - self.global_pool_elements)
        return flops, self.params - sum(layer.params for layer in classifier)

    @property
    def max_activation_bytes(self) -> int:
        """Largest input + output footprint of a single conv/linear layer."""
        return max(layer.activation_bytes(self.bytes_per_element) for layer in self.layers)


def block_layers(family_name: str | BlockFamily, prefix: str, c_in: int, out: int, btn: int, k: int, stride: int,
                 in_res: int, first: bool) -> tuple[list[Layer], int]:
    """The conv layers of one block and its elementwise op count (its family's
    :meth:`~designer.families.base.BlockFamily.layers`). ``first``: the block opens its stage."""
    return family(family_name).layers(prefix, c_in, out, btn, k, stride, in_res, first)


def check_counting(counting: str, family_name: str | None = None, option: str = "counting") -> None:
    """A ValueError naming ``option`` unless ``counting`` is known (and applies to the family)."""
    if counting not in COUNTINGS:
        raise ValueError(f"{option}: must be one of {', '.join(COUNTINGS)}, got {counting!r}")
    if counting == "tinynas" and family_name is not None and family_name not in TINYNAS_FAMILIES:
        raise ValueError(f"{option}: 'tinynas' is defined for the {' and '.join(TINYNAS_FAMILIES)} families "
                         f"(TinyNAS's ResK1KXK1 and ResKXKX), not {family_name!r}")


def identity_add_elements(family_name: str | BlockFamily, out: int, stride: int, in_res: int, first: bool) -> int:
    """Elements of a block's residual add without a projection: the later blocks of a stage
    in the residual families TinyNAS counts (their first blocks always project)."""
    return 0 if first or family(family_name).name not in TINYNAS_FAMILIES else out * down(in_res, stride) ** 2


def block_budget(family_name: str | BlockFamily, c_in: int, out: int, btn: int, k: int, stride: int, in_res: int, first: bool,
                 counting: str = "mpdesign", squeeze_excite: bool = True) -> tuple[int, int]:
    """(compute, size) of one block under ``counting`` (``squeeze_excite=False``: without its
    SE layers, which the design models leave out)."""
    layers, ops = block_layers(family_name, "b", c_in, out, btn, k, stride, in_res, first)
    layers = [layer for layer in layers if squeeze_excite or ".se." not in layer.name]
    macs, params = sum(layer.macs for layer in layers), sum(layer.params for layer in layers)
    if counting == "tinynas":
        macs += (ops + sum(layer.output_elements for layer in layers if layer.batchnorm)
                 - identity_add_elements(family_name, out, stride, in_res, first))
    return macs, params


def conv_bn_act_budget(c_in: int, c_out: int, k: int, stride: int, in_res: int,
                       counting: str = "mpdesign") -> tuple[int, int]:
    """(compute, size) of a conv + BN + activation (the stem, a head conv) under ``counting``."""
    layer = Layer("conv", "conv", c_in, c_out, k, stride, 1, in_res, down(in_res, stride))
    extra = 3 * layer.output_elements if counting == "tinynas" else 0  # BN (2 per element) and the activation
    return layer.macs + extra, layer.params


def count(spec: NetworkSpec, bytes_per_element: int = 1) -> Costs:
    """Closed-form costs of ``spec`` (see the module docstring for what is counted)."""
    res = spec.resolution
    stem_res = down(res, spec.stem.stride)
    layers = [Layer("stem.conv", "conv", spec.in_channels, spec.stem.out, spec.stem.k, spec.stem.stride, 1,
                    res, stem_res)]
    ops = 2 * spec.stem.out * stem_res * stem_res
    res, channels = stem_res, spec.stem.out
    stage_macs, stage_params = [], []
    identity_adds = 0
    for i, stage in enumerate(spec.stages):
        stage_layers: list[Layer] = []
        for j in range(stage.L):
            stride = stage.stride if j == 0 else 1
            block, block_ops = block_layers(stage.family, f"stages.{i}.{j}", channels, stage.out, stage.btn,
                                            stage.k, stride, res, first=j == 0)
            stage_layers += block
            ops += block_ops
            identity_adds += identity_add_elements(stage.family, stage.out, stride, res, j == 0)
            res, channels = down(res, stride), stage.out
        layers += stage_layers
        stage_macs.append(sum(layer.macs for layer in stage_layers))
        stage_params.append(sum(layer.params for layer in stage_layers))
    if spec.head is not None:
        layers.append(Layer("head.conv", "conv", channels, spec.head, 1, 1, 1, res, res))
        ops += 2 * spec.head * res * res
        channels = spec.head
    pool = channels * res * res  # global average pool
    layers.append(Layer("classifier", "linear", channels, spec.num_classes, 1, 1, 1, 1, 1, bias=True,
                        batchnorm=False))
    return Costs(layers=layers, elementwise_ops=ops + pool, bytes_per_element=bytes_per_element,
                 stage_macs=stage_macs, stage_params=stage_params, identity_add_elements=identity_adds,
                 global_pool_elements=pool)
