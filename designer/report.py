"""What ``mpdesign inspect`` reports about a spec, as data (the CLI only prints it)."""

from __future__ import annotations

from typing import Any

from designer.costs import TINYNAS_FAMILIES, count
from designer.entropy import deepmad_scores
from designer.spec import NetworkSpec


def inspect_spec(spec: NetworkSpec, alpha: list[float] | None = None, bytes_per_element: int = 1) -> dict[str, Any]:
    """Costs and DeepMAD scores of ``spec`` as one JSON-ready dict.

    Keys: ``params``, ``macs`` (multiply-accumulates of convs and linears), ``deepmad_score``,
    ``effectiveness``, ``layers`` (DeepMAD's layer count), ``depth_penalty``, the breakdown of
    parameters, ``max_activation_bytes``, ``tinynas_flops`` and ``tinynas_model_size`` (the
    DeepMAD authors' counting, :mod:`designer.costs`; None for families TinyNAS has not), one row per spec stage (``stages``), one per
    DeepMAD scoring stage (``scoring_stages``) and one per conv/linear layer (``layer_table``).
    """
    costs = count(spec, bytes_per_element)
    scores = deepmad_scores(spec, alpha)
    tinynas = (costs.budget("tinynas") if all(stage.family in TINYNAS_FAMILIES for stage in spec.stages)
               else (None, None))
    stage_rows = []
    for i, stage in enumerate(spec.stages):
        prefix = f"stages.{i}."
        stage_rows.append({
            "family": stage.family, "out": stage.out, "btn": stage.btn, "k": stage.k, "L": stage.L,
            "stride": stage.stride, "params": costs.stage_params[i], "macs": costs.stage_macs[i],
            "max_activation_bytes": max(layer.activation_bytes(bytes_per_element)
                                        for layer in costs.layers if layer.name.startswith(prefix)),
        })
    scoring_rows = [
        {"channels": c, "resolution": r, "entropy": h, "alpha": a, "rho": rho}
        for c, r, h, a, rho in zip(scores.stage_channels, scores.stage_resolution, scores.stage_entropy,
                                   scores.alpha, scores.rho)
    ]
    layer_rows = [
        {"name": layer.name, "kind": layer.kind, "c_in": layer.c_in, "c_out": layer.c_out, "k": layer.k,
         "stride": layer.stride, "groups": layer.groups, "in_res": layer.in_res, "out_res": layer.out_res,
         "params": layer.params, "macs": layer.macs,
         "activation_bytes": layer.activation_bytes(bytes_per_element)}
        for layer in costs.layers
    ]
    from designer.schemas import FORMAT_VERSION  # here, not at import: `mpdesign --help` loads this module
    return {
        "format_version": FORMAT_VERSION,
        "name": spec.name,
        "resolution": spec.resolution,
        "params": costs.params,
        "conv_weights": costs.conv_weights,
        "batchnorm_params": costs.batchnorm_params,
        "classifier_params": costs.classifier_params,
        "macs": costs.macs,
        "elementwise_ops": costs.elementwise_ops,
        "tinynas_flops": tinynas[0],
        "tinynas_model_size": tinynas[1],
        "max_activation_bytes": costs.max_activation_bytes,
        "bytes_per_element": bytes_per_element,
        "deepmad_score": scores.score,
        "effectiveness": scores.effectiveness,
        "layers": scores.layers,
        "depth_penalty": scores.depth_penalty,
        "stages": stage_rows,
        "scoring_stages": scoring_rows,
        "layer_table": layer_rows,
    }
