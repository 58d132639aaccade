"""The JSON every command prints with ``--json`` and every file it writes, one pydantic model
per payload: the models are the documentation (``mpdesign schema NAME`` prints the JSON Schema,
``docs/outputs.md`` lists them), and the tests validate real payloads against them with unknown
keys forbidden, so a key added to a payload without its model fails a test.

Every payload carries ``format_version`` (:data:`FORMAT_VERSION`); a reader of a newer version
than it knows refuses it by name, an older file without the key is version 1.

Words used below: M_R, the least scratchpad any mapping can run in (the largest single
operator's inputs and outputs); M_P, the least peak of live bytes over schedules that never
spill (every tensor resident from its producer to its last reader); M_H, their middle,
(M_R + M_P) // 2.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORMAT_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorEntry(_Strict):
    bytes: int = Field(description="size in bytes")
    producer: Optional[str] = Field(description="the operator that writes it; null for an input or weight")


class OperatorEntry(_Strict):
    inputs: list[str]
    outputs: list[str]


class StepEntry(_Strict):
    op: str = Field(description="the operator this step runs")
    resident: dict[str, int] = Field(description="tensor -> base address (bytes) of every tensor in the scratchpad")
    spilled: list[str] = Field(description="tensors written to host now (the first time each leaves while needed)")
    retrieved: list[str] = Field(description="tensors read back from host now")


class DramBytes(_Strict):
    compulsory: int = Field(description="each input and weight read once, each output written once")
    traffic: int = Field(description="spills, retrievals and every re-read of an input or weight")


class MappingFile(_Strict):
    """What `map --out` writes and the simulator replays (designer.mapping.core.io)."""

    format_version: int = FORMAT_VERSION
    scratchpad_bytes: int
    offchip_bytes: int = Field(description="spilled plus retrieved bytes (COSMA's objective)")
    dram_bytes: DramBytes
    status: Optional[str] = Field(description="optimal, feasible, ... as the solve reported")
    bound: Optional[float] = Field(description="the best proven lower bound, in the objective's unit")
    gap: Optional[float] = Field(description="(objective - bound) / objective")
    seconds: Optional[float]
    method: str = Field(description="what produced the mapping (a strategy, or a baseline that beat it)")
    tensors: dict[str, TensorEntry]
    operators: dict[str, OperatorEntry]
    steps: list[StepEntry] = Field(description="one per operator, in execution order")


class Budgets(_Strict):
    M_R: int
    M_P: int
    M_H: int
    M_P_proven: bool


class TilingEntry(_Strict):
    cut: str = Field(description="the fx node the patched prefix ends at")
    k: int = Field(description="patches per side")
    extra_macs: int = Field(description="MACs recomputed in the patches' overlapping halos")
    model_macs: int
    max_abs_difference: Optional[float] = Field(description="tiled against untiled output, on a random input")


class MapReport(MappingFile):
    """What `map --json` prints: the mapping file and the solve's report."""

    objective: str = Field(description="the objective minimised: offchip or dram")
    objective_value: Optional[float]
    strategy: str
    baselines: dict[str, int] = Field(description="each baseline's cost in the objective")
    budgets: Budgets
    message: str
    solver_status: Optional[str] = Field(description="the strategy's own status, when it ran")
    valid: bool = Field(description="the independent simulator's verdict")
    tiling: Optional[TilingEntry] = None
    candidates: Optional[int] = Field(None, description="tilings weighed (map --tiling)")
    candidates_solved: Optional[int] = None


class CurveRow(_Strict):
    objective: Optional[float]
    bound: Optional[float]
    gap: Optional[float]
    status: str
    offchip_bytes: Optional[int]
    dram_traffic: Optional[int]
    valid: bool


class CurvePoint(CurveRow):
    scratchpad_bytes: int
    tiling: str = Field(description="the tiling chosen at this size, or untiled")
    extra_macs: int
    untiled: Optional[CurveRow] = Field(None, description="the same question without tiling, where it fits")


class TrafficCurve(_Strict):
    """What `map --curve ... --out` writes."""

    format_version: int = FORMAT_VERSION
    points: list[CurvePoint]


class LayerCurveEntry(_Strict):
    name: str
    weights: int = Field(description="the layer's prunable weights")
    macs: int = Field(description="its MACs at full density")
    sparsity: list[float]
    distortion: list[float] = Field(description="output distortion (logit MSE) at each sparsity")


class CurvesFile(_Strict):
    """What `prune --save-curves` writes and `allocate` reads (designer.pruning.curves)."""

    format_version: int = FORMAT_VERSION
    layers: list[LayerCurveEntry]


class ModelSize(_Strict):
    """The last model solved; empty when no solver model ran (the constructive start's design)."""

    variables: Optional[int] = None
    integer_variables: Optional[int] = None
    constraints: Optional[int] = None


class DesignStep(_Strict):
    iteration: int
    bound: Optional[float]
    score: Optional[float] = Field(description="the best design's objective so far")
    gap: Optional[float]
    seconds: float


class DesignReport(_Strict):
    """What `design --json` prints (designer.design.DesignResult.to_dict)."""

    format_version: int = FORMAT_VERSION
    spec: Optional[dict] = Field(description="the designed network (spec JSON, README 'Spec JSON'); null if none")
    status: str
    objective: Optional[float] = Field(description="what was maximised: the score, or the score minus the penalty")
    bound: Optional[float] = Field(description="a proven upper bound on the objective over the whole space")
    gap: Optional[float] = Field(description="(bound - objective) / bound")
    seconds: float
    score: Optional[float] = Field(description="the DeepMAD score, recounted on the spec")
    macs: Optional[int]
    params: Optional[int]
    effectiveness: Optional[float]
    layers: Optional[int]
    depth_penalty: Optional[float]
    max_activation_bytes: Optional[int]
    latency_ms: Optional[float] = Field(description="modelled with the problem's latency profile")
    solver: str
    message: str
    model_size: Optional[ModelSize]
    history: list[DesignStep]
    first_design_seconds: Optional[float] = Field(description="when a MILP first found a design")
    counting: str = Field(description="mpdesign or tinynas: how the budgets count")
    counted: Optional[list[int]] = Field(description="(compute, size) under that counting")
    problem: dict = Field(description="the DesignProblem solved, as DesignProblem.from_dict reads it")


class PruneRound(_Strict):
    target_kept: float = Field(description="the fraction kept after this round")
    budget: int = Field(description="whole weights (or MACs) kept, counted on the masks")
    budget_unit: Literal["weights", "MACs"]
    kept_weights: int
    sparsity: float
    kept_macs: float = Field(description="fraction of the dense MACs kept")
    predicted_distortion: Optional[float] = Field(description="the allocation's summed curve distortion (rd)")
    measured_distortion: Optional[float] = Field(description="its joint distortion, measured with every layer "
                                                             "pruned at once (rd with --correction-rounds)")
    criterion: str = Field(description="the within-layer criterion: magnitude or obs")
    reconstruction_error: Optional[dict[str, dict[str, float]]] = Field(
        description="obs: per layer, its output's relative error on the calibration data with the plain mask "
                    "(masked) and with the weights kept (kept, re-fitted), and greedy: 1 where the mask followed "
                    "ExactOBS's greedy path, 0 where the one-shot saliency chose it (wide layers), and dead_inputs: "
                    "inputs zero on every calibration sample (H damped there); null for magnitude")
    seconds: dict[str, float] = Field(description="the round's time per step: allocation (curves included), masks, "
                                                  "fine-tuning")


class PruneReport(_Strict):
    """What `prune --json` prints in weights mode."""

    format_version: int = FORMAT_VERSION
    method: str
    criterion: str
    schedule: str
    budget: int
    budget_unit: Literal["weights", "MACs"]
    kept_weights: int
    sparsity: float = Field(description="of the prunable weights")
    layer_sparsity: dict[str, float]
    dataset: str
    accuracy_before: float
    accuracy_after: float
    kept_macs: float
    rounds: list[PruneRound]
    output: str
    model_sparsity: float = Field(description="zeros among all the model's parameters, each tied tensor once")
    parameters: int = Field(description="the model's parameters, each tied tensor once")
    left_out: dict[str, str] = Field(description="layers with parameters that weight pruning left whole, and why")


class NMReport(_Strict):
    """What `prune --nm N:M --json` prints."""

    format_version: int = FORMAT_VERSION
    mode: Literal["nm"]
    pattern: str = Field(description="N:M, e.g. 2:4")
    criterion: str
    sparsity: float = Field(description="of the prunable weights")
    layer_sparsity: dict[str, float]
    dense: list[str] = Field(description="layers left dense: input channels (per group) not a multiple of M")
    reconstruction_error: Optional[dict[str, dict[str, float]]] = Field(
        description="obs: per layer, its output's relative error with the plain mask (masked) and re-fitted (kept), "
                    "and greedy (1: ExactOBS's greedy path chose the mask, 0: the one-shot saliency)")
    accuracy_before: float
    accuracy_after: float
    output: str


class ChannelReport(_Strict):
    """What `prune --mode channels --json` prints."""

    format_version: int = FORMAT_VERSION
    mode: Literal["channels"]
    criterion: str = Field(description="magnitude, or obs: the layers reading cut channels re-fitted by least squares")
    kept_channels: dict[str, int] = Field(description="the width kept per pruned group or stage")
    params: int
    params_dense: int
    macs: int
    macs_dense: int
    accuracy_before: float
    accuracy_after: float
    latency_dense_s: float = Field(description="median forward seconds, CPU, the calibration batch")
    latency_pruned_s: float
    output: str


class LatencyProfileFile(_Strict):
    """What `profile --out` writes and `design --profile` reads (designer.design.latency)."""

    format_version: int = FORMAT_VERSION
    coefficients: dict[str, list[float]] = Field(description="per layer kind (pointwise, spatial, depthwise, "
                                                             "linear, ...): milliseconds per MAC, per byte moved, "
                                                             "per layer")
    device: str
    torch_version: str
    precision: Literal["fp32", "bf16", "fp16"]
    batch: int = Field(ge=1)
    bytes_per_element: int = Field(ge=1)
    fit: dict[str, Union[float, str]] = Field(
        default_factory=dict, description="the fit's median and worst relative error, held-out error, timing "
                                          "noise, and what it was fitted on (blocks or networks)")
    constant_ms: float = Field(0.0, ge=0, description="per network (a whole-network fit; 0 for a block fit)")


class QuantizedLayer(_Strict):
    name: str
    bits: int = Field(description="weight bits (symmetric per output channel)")
    sparsity: float = Field(description="weights removed before quantizing (with --with-sparsity)")
    weights: int
    predicted: float = Field(description="the layer's measured distortion at this option (logit MSE, alone)")


class QuantizeReport(_Strict):
    """What `quantize --json` prints."""

    format_version: int = FORMAT_VERSION
    rounding: Literal["gptq", "nearest"]
    layers: list[QuantizedLayer]
    predicted: float = Field(description="the summed per-layer distortions (what the DP minimised)")
    measured_weights: float = Field(description="the logits' distortion measured with every weight quantized")
    measured: float = Field(description="... and every quantized layer's input and output at 8 bits too")
    average_bits: float = Field(description="the weights' mean bits (a sparse layer: kept x bits + 1 mask bit each)")
    size_bytes: int = Field(description="the quantized layers' bytes in the ONNX file (codes, scales, zero points, "
                                        "int32 biases and their scales), recountable on it")
    folded: list[str] = Field(description="the BatchNorms folded into their convolutions")
    budget: Optional[dict[str, Union[str, float]]] = Field(description="option, unit, limit and the allocation's "
                                                                       "cost; null for uniform quantization")
    solve: Optional[dict] = Field(description="the DP's result as it gave it (status, objective, ...)")
    accuracy_float: float = Field(description="test accuracy of the float network (BatchNorm folded)")
    accuracy_quantized: float = Field(description="... of the fake-quantized torch module")
    accuracy_qat: Optional[float] = Field(description="... after --qat-epochs of quantization-aware training")
    accuracy_onnx: float = Field(description="... of the ONNX file, run by ONNX Runtime")
    max_abs_difference: float = Field(description="the largest |logit| difference between ONNX Runtime and the torch "
                                                  "module on 64 test images")
    onnx_bytes: int
    float_onnx_bytes: int = Field(description="the same network's float32 ONNX file")
    latency_int_b1_s: float = Field(description="median seconds of one ONNX Runtime run, one thread, batch 1")
    latency_int_b32_s: float
    latency_float_b1_s: float
    latency_float_b32_s: float
    output: str


class AllocationReport(_Strict):
    """What `allocate` prints."""

    format_version: int = FORMAT_VERSION
    sparsity: dict[str, float]
    distortion: Optional[float] = Field(description="summed single-layer distortions (rd)")
    kept_weights: float
    kept_macs: float


class ModuleRow(_Strict):
    module: str
    type: str
    params: int
    macs: int


class ModelInspection(_Strict):
    """What `inspect --model ... --json` prints."""

    format_version: int = FORMAT_VERSION
    model: str
    input_shape: list[int]
    params: int
    macs: int = Field(description="FLOPs / 2 as torch's FlopCounterMode counts them, one forward pass")
    modules: list[ModuleRow]


class StageRow(_Strict):
    family: str
    out: int
    btn: int
    k: int
    L: int
    stride: int
    params: int
    macs: int
    max_activation_bytes: int


class ScoringRow(_Strict):
    channels: int
    resolution: int
    entropy: float = Field(description="the stage's entropy H_i (DeepMAD's equation 2)")
    alpha: float
    rho: float = Field(description="effectiveness at the stage's end")


class LayerRow(_Strict):
    name: str
    kind: str
    c_in: int
    c_out: int
    k: int
    stride: int
    groups: int
    in_res: int
    out_res: int
    params: int
    macs: int
    activation_bytes: int = Field(description="the layer's inputs plus output")


class SpecInspection(_Strict):
    """What `inspect SPEC --json` prints (designer.report.inspect_spec)."""

    format_version: int = FORMAT_VERSION
    name: str
    resolution: int
    params: int
    conv_weights: int
    batchnorm_params: int
    classifier_params: int
    macs: int = Field(description="multiply-accumulates of convs and linears")
    elementwise_ops: int
    tinynas_flops: Optional[int] = Field(description="the DeepMAD authors' counting; null for other families")
    tinynas_model_size: Optional[int]
    max_activation_bytes: int
    bytes_per_element: int
    deepmad_score: float
    effectiveness: float
    layers: int = Field(description="DeepMAD's layer count")
    depth_penalty: float
    stages: list[StageRow]
    scoring_stages: list[ScoringRow]
    layer_table: list[LayerRow]


class SweepDesignRow(DesignReport):
    """One grid point of a design sweep: the design report of that point's problem."""

    point: dict = Field(description="the grid values of this point")


class SweepMappingRow(_Strict):
    """One grid point of a mapping sweep: the solve's report (the mapping itself is not kept)."""

    point: dict = Field(description="the grid values of this point")
    scratchpad_bytes: int
    budgets: Budgets
    status: str
    objective: Optional[float]
    objective_name: str = Field(description="offchip or dram")
    offchip_bytes: Optional[int]
    dram_bytes: Optional[DramBytes]
    bound: Optional[float]
    gap: Optional[float]
    seconds: float
    baselines: dict[str, int]
    valid: Optional[bool] = Field(description="the simulator's verdict; null without a mapping")
    message: str


class SweepFailedRow(_Strict):
    """A grid point with no result: budgets that cannot be met (``infeasible``) or an ``error``."""

    point: dict
    status: Literal["infeasible", "error"]
    message: str
    scratchpad_bytes: Optional[int] = Field(None, description="mapping sweeps: the point's scratchpad, if known")


class SweepFile(_Strict):
    """What `sweep --out` writes and `sweep --json` prints: every grid point's row, in grid order
    (`--out` is rewritten in arrival order as results come in)."""

    format_version: int = FORMAT_VERSION
    kind: Literal["design", "mapping"]
    time_limit: float = Field(description="seconds per problem")
    rows: list[Union[SweepFailedRow, SweepDesignRow, SweepMappingRow]]


PAYLOADS: dict[str, type[BaseModel]] = {"mapping": MappingFile, "map": MapReport, "curve": TrafficCurve,
                                         "curves": CurvesFile, "design": DesignReport, "prune": PruneReport,
                                         "channels": ChannelReport, "nm": NMReport, "quantize": QuantizeReport, "profile": LatencyProfileFile,
                                         "allocation": AllocationReport,
                                         "inspect-model": ModelInspection, "inspect": SpecInspection,
                                         "sweep": SweepFile}


def _place(loc: tuple) -> str:
    """A pydantic error location as a path into the file: ``layers[0].weights``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def read_payload(model: type[BaseModel], data: Any, what: str) -> BaseModel:
    """``data`` (a parsed JSON file) read with ``model`` in strict mode (a number where a number
    belongs: ``"3"`` and ``true`` are refused), or one line naming ``what``, the place in the file
    and the problem: the same models that document the outputs check the inputs."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as error:
        problems = error.errors()
        first = problems[0]
        parent = first["loc"][:-1]
        if first["type"] == "missing":
            fields = sorted(str(p["loc"][-1]) for p in problems if p["type"] == "missing" and p["loc"][:-1] == parent)
            where = f"{what}: {_place(parent)}" if parent else what
            raise ValueError(f"{where} lacks {', '.join(fields)}") from None
        if first["type"] == "extra_forbidden":
            raise ValueError(f"{what}: {_place(first['loc'])}: unknown field") from None
        raise ValueError(f"{what}: {_place(first['loc']) or 'the file'}: {first['msg'].lower()}, got "
                         f"{first.get('input')!r}") from None


def check_version(data: dict, what: str) -> None:
    """A file's ``format_version`` is one this version reads (none: version 1)."""
    version = data.get("format_version", 1) if isinstance(data, dict) else 1
    if type(version) is not int or version != FORMAT_VERSION:  # true == 1 in Python, not in a file
        raise ValueError(f"{what}: format_version {version!r}; this mpdesign reads {FORMAT_VERSION}")


def schema(name: str) -> dict:
    """The JSON Schema of payload ``name`` (a key of :data:`PAYLOADS`)."""
    if name not in PAYLOADS:
        raise ValueError(f"schema: one of {', '.join(PAYLOADS)}, got {name!r}")
    return PAYLOADS[name].model_json_schema()


__all__ = ["FORMAT_VERSION", "PAYLOADS", "check_version", "read_payload", "schema"]
