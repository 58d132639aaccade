"""Importer benchmark: operators, tensors and M_R of the graphs the importer makes of
hand-written torchvision models at 224 x 224 (torchvision is no dependency here: the models are
in ``tests/models/``, layer for layer, with torchvision's parameter counts), forward and one
training step, fused (the default) and not.

    python benchmarks/importer.py                      # every model, forward and training
    python benchmarks/importer.py --models vit_b_16 swin_t --no-training

One markdown row per model and graph: parameters, operators and tensors (fused / unfused), M_R
(the largest operator's inputs and outputs, 8-bit), the largest tensor, and the capture's seconds.
"""

from __future__ import annotations

import argparse
import time

from designer.mapping import load
from designer.mapping.strategies.baselines import required_bytes

MODELS = {
    "resnet18": "tests/models/cifar.py:tv_resnet18",
    "resnet50": "tests/models/cifar.py:tv_resnet50",
    "vgg16": "tests/models/cifar.py:vgg16",
    "efficientnet_b0": "tests/models/torchvision_like.py:efficientnet_b0",
    "mobilenet_v3_small": "tests/models/torchvision_like.py:mobilenet_v3_small",
    "convnext_tiny": "tests/models/torchvision_like.py:convnext_tiny",
    "vit_b_16": "tests/models/torchvision_like.py:vit_b_16",
    "swin_t": "tests/models/torchvision_like.py:swin_t",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--no-training", action="store_true", help="forward graphs only")
    args = parser.parse_args()
    print("| model | graph | ops fused | ops unfused | tensors fused | M_R fused | M_R unfused | largest tensor "
          "| capture s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        for training in (False,) if args.no_training else (False, True):
            start = time.perf_counter()
            fused = load(MODELS[name], input_shape="3,224,224", training=training)
            seconds = time.perf_counter() - start
            unfused = load(MODELS[name], input_shape="3,224,224", training=training, fuse=False)
            largest = max(t.bytes for t in fused.tensors.values())
            print(f"| {name} | {'training' if training else 'forward'} | {len(fused.operators)} "
                  f"| {len(unfused.operators)} | {len(fused.tensors)} | {required_bytes(fused):,} "
                  f"| {required_bytes(unfused):,} | {largest:,} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
