"""Closed-form cost model of a :class:`~designer.spec.NetworkSpec`.

Every conv and linear layer of the materialised network (:mod:`designer.network`) is
listed with its shapes, so that

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

from designer.spec import NetworkSpec


def se_channels(btn: int) -> int:
    """Squeeze-excite width: a quarter of the expanded width (at least 1)."""
    return max(1, btn // 4)


def _down(res: int, stride: int) -> int:
    return -(-res // stride)


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


def block_layers(family: str, prefix: str, c_in: int, out: int, btn: int, k: int, stride: int,
                 in_res: int, first: bool) -> tuple[list[Layer], int]:
    """The conv layers of one block and its elementwise op count (BN, activations, add, pooling).

    ``first``: the block opens its stage (basic and bottleneck stages give it a projection
    shortcut). Every cost is affine in ``c_in``.
    """
    res = _down(in_res, stride)
    layers: list[Layer] = []
    ops = 0
    if family == "basic":
        layers += [Layer(f"{prefix}.conv1.conv", "conv", c_in, btn, k, stride, 1, in_res, res),
                   Layer(f"{prefix}.conv2.conv", "conv", btn, out, k, 1, 1, res, res)]
        ops += 2 * btn * res * res + out * res * res  # BN + ReLU, BN
        has_projection = first
    elif family == "bottleneck":
        layers += [Layer(f"{prefix}.conv1.conv", "conv", c_in, btn, 1, 1, 1, in_res, in_res),
                   Layer(f"{prefix}.conv2.conv", "conv", btn, btn, k, stride, 1, in_res, res),
                   Layer(f"{prefix}.conv3.conv", "conv", btn, out, 1, 1, 1, res, res)]
        ops += 2 * btn * in_res * in_res + 2 * btn * res * res + out * res * res
        has_projection = first
    elif family == "inverted":
        se = se_channels(btn)
        layers += [Layer(f"{prefix}.conv1.conv", "conv", c_in, btn, 1, 1, 1, in_res, in_res),
                   Layer(f"{prefix}.conv2.conv", "conv", btn, btn, k, stride, btn, in_res, res),
                   Layer(f"{prefix}.se.reduce", "conv", btn, se, 1, 1, 1, 1, 1, bias=True, batchnorm=False),
                   Layer(f"{prefix}.se.expand", "conv", se, btn, 1, 1, 1, 1, 1, bias=True, batchnorm=False),
                   Layer(f"{prefix}.conv3.conv", "conv", btn, out, 1, 1, 1, res, res)]
        # BN+SiLU twice, SE: pool, SiLU, sigmoid, gate multiply; BN after projection
        ops += 2 * btn * in_res * in_res + 2 * btn * res * res
        ops += btn * res * res + se + btn + btn * res * res + out * res * res
        has_projection = False
    else:
        raise ValueError(f"unknown block family {family!r}")
    if family == "inverted":
        if c_in == out and stride == 1:
            ops += out * res * res  # residual add
    else:
        if has_projection:
            if stride != 1:
                ops += c_in * in_res * in_res  # average pool
            layers.append(Layer(f"{prefix}.shortcut.conv", "conv", c_in, out, 1, 1, 1, res, res))
            ops += out * res * res  # its BN
        ops += 2 * out * res * res  # residual add, ReLU
    return layers, ops


def count(spec: NetworkSpec, bytes_per_element: int = 1) -> Costs:
    """Closed-form costs of ``spec`` (see the module docstring for what is counted)."""
    res = spec.resolution
    stem_res = _down(res, spec.stem.stride)
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
            res, channels = _down(res, stride), stage.out
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
