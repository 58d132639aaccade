"""Mixed-precision quantization by the pruning wing's machinery: per-layer distortion over
bit-widths (and sparsities), a knapsack DP under a model size, average bits or BOPs budget,
GPTQ on the same Hessians as OBS; the user's module fake-quantized (it still trains) and an
ONNX file in QDQ form that ONNX Runtime runs with integer kernels."""

from designer.quantization.budgets import BOPs, AverageBits, Budget, ModelSize, allocate_bits
from designer.quantization.quantize import QuantizationReport, Quantized, quantize_model
from designer.quantization.rounding import GPTQ, Nearest, Rounding

__all__ = ["AverageBits", "BOPs", "Budget", "GPTQ", "ModelSize", "Nearest", "QuantizationReport", "Quantized",
           "Rounding", "allocate_bits", "quantize_model"]
