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

``tests/test_costs.py`` checks all of this against a recount on the torch module
(``numel`` of its parameters and ``torch.utils.flop_counter.FlopCounterMode``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from designer.families import family
from designer.families.base import Layer, down
from designer.spec import NetworkSpec


@dataclass
class Costs:
    """Totals of a network; ``layers`` lists every conv and linear layer in order."""

    layers: list[Layer]
    elementwise_ops: int
    bytes_per_element: int = 1
    stage_macs: list[int] = field(default_factory=list)
    stage_params: list[int] = field(default_factory=list)

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
    def max_activation_bytes(self) -> int:
        """Largest input + output footprint of a single conv/linear layer."""
        return max(layer.activation_bytes(self.bytes_per_element) for layer in self.layers)


def block_layers(family_name: str, prefix: str, c_in: int, out: int, btn: int, k: int, stride: int,
                 in_res: int, first: bool) -> tuple[list[Layer], int]:
    """The conv layers of one block and its elementwise op count (its family's
    :meth:`~designer.families.base.BlockFamily.layers`). ``first``: the block opens its stage."""
    return family(family_name).layers(prefix, c_in, out, btn, k, stride, in_res, first)


def count(spec: NetworkSpec, bytes_per_element: int = 1) -> Costs:
    """Closed-form costs of ``spec`` (see the module docstring for what is counted)."""
    res = spec.resolution
    stem_res = down(res, spec.stem.stride)
    layers = [Layer("stem.conv", "conv", spec.in_channels, spec.stem.out, spec.stem.k, spec.stem.stride, 1,
                    res, stem_res)]
    ops = 2 * spec.stem.out * stem_res * stem_res
    res, channels = stem_res, spec.stem.out
    stage_macs, stage_params = [], []
    for i, stage in enumerate(spec.stages):
        stage_layers: list[Layer] = []
        for j in range(stage.L):
            stride = stage.stride if j == 0 else 1
            block, block_ops = block_layers(stage.family, f"stages.{i}.{j}", channels, stage.out, stage.btn,
                                            stage.k, stride, res, first=j == 0)
            stage_layers += block
            ops += block_ops
            res, channels = down(res, stride), stage.out
        layers += stage_layers
        stage_macs.append(sum(layer.macs for layer in stage_layers))
        stage_params.append(sum(layer.params for layer in stage_layers))
    if spec.head is not None:
        layers.append(Layer("head.conv", "conv", channels, spec.head, 1, 1, 1, res, res))
        ops += 2 * spec.head * res * res
        channels = spec.head
    ops += channels * res * res  # global average pool
    layers.append(Layer("classifier", "linear", channels, spec.num_classes, 1, 1, 1, 1, 1, bias=True,
                        batchnorm=False))
    return Costs(layers=layers, elementwise_ops=ops, bytes_per_element=bytes_per_element,
                 stage_macs=stage_macs, stage_params=stage_params)
