#!/usr/bin/env bash
# The GPU check, for a machine with PyTorch (CUDA) preinstalled and nothing else; under 5 minutes.
#
#   bash benchmarks/device_check.sh [WHEEL_DIR]
#
# 1. installs what mpdesign needs beside torch from the wheels in WHEEL_DIR (default .whl;
#    benchmarks/README.md lists them and how to download them for the GPU machine's Python),
# 2. runs the CUDA tests (marked `cuda`; skipped on machines without a GPU, CI included),
# 3. runs the throughput benchmark: the R50-budget MILP design, the released DeepMAD-R50 and a
#    hand-written torchvision-style ResNet-50 at 224x224, batch 128, bf16, channels-last,
#    with the loop efficiency of designer.train.loop.train against a plain loop,
# 4. times the distortion curves of the hand-written CIFAR ResNet-18 (41 points, 256 images,
#    every point measured; the goal there is under 15 s).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="${1:-.whl}"
SITE="${MPDESIGN_SITE:-/tmp/mpdesign-site}"
export PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('torch', torch.__version__, 'on', torch.cuda.get_device_name())"
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 -c "import designer.cli, designer.design.solve, designer.mapping.solve" \
  || { echo "a package mpdesign needs is missing: add its wheel to $WHEELS" >&2; exit 1; }
timeout 150 python3 -m pytest -q -m cuda -p no:cacheprovider tests/test_device.py
timeout 150 python3 benchmarks/throughput.py --device cuda --precision bf16 --batch 128 --resolution 224 \
  --models design:deepmad-r50 deepmad-r50 tv-resnet50 --steps 20 --epochs 1 --repeats 2 --design-seconds 20
timeout 120 python3 benchmarks/curves.py --device cuda --width full --epochs 1 --reference-images 256 \
  --images 256 64 --points 41
