"""BatchNorm folded into the convolution before it, in the user's own module.

An integer runtime has no BatchNorm after a convolution: it is folded into the conv's weight and
bias (``w' = w gamma / sigma``, ``b' = (b - mu) gamma / sigma + beta``), and it is the folded
weight that is quantized (quantizing first and folding after would leave the grid). ``torch.fx``
finds the pairs (a conv whose only reader is a BatchNorm called once); torch's
``fuse_conv_bn_weights`` computes the folded values; the conv takes them and the BatchNorm is
replaced by ``nn.Identity`` in its parent, so the module keeps its class, its forward and every
other layer.
"""

from __future__ import annotations

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def _pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv, batchnorm) names whose fold leaves the forward unchanged."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as error:  # fx cannot trace data-dependent control flow
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ValueError(f"quantize: torch.fx cannot trace the model ({type(error).__name__}: {error}), so its "
                             f"BatchNorms cannot be folded into their convolutions for integer inference") from None
        return []
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(model.get_submodule(node.target), nn.Conv2d):
            continue
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module" or calls[node.target] != 1:
            continue
        norm = model.get_submodule(users[0].target)
        if isinstance(norm, nn.BatchNorm2d) and calls[users[0].target] == 1 and norm.track_running_stats:
            pairs.append((node.target, users[0].target))
    return pairs


def fold_batchnorm(model: nn.Module) -> list[str]:
    """Fold every foldable BatchNorm of ``model`` (in place, eval statistics); the names folded.
    A BatchNorm left (one that follows no conv) stays a float layer of the network."""
    model.eval()
    folded = []
    for conv_name, norm_name in _pairs(model):
        conv, norm = model.get_submodule(conv_name), model.get_submodule(norm_name)
        weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.eps,
                                            norm.weight, norm.bias)
        conv.weight, conv.bias = weight, bias
        parent, _, child = norm_name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())
        folded.append(norm_name)
    return folded
