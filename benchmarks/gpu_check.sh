#!/usr/bin/env bash
# One prepared check for a lent GPU (about 8 minutes on one H200): build with the CUDA backend
# required, run the GPU tests, then the GPU benchmarks. Everything lands under $OUT.
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/out/gpu}"
mkdir -p "$OUT"
{
  nvidia-smi || true
  python3 -m venv .venv-gpu && . .venv-gpu/bin/activate
  pip install -q torch==2.14.1 torchvision==0.29.1 2>&1 | tail -2
  SIMATTR_CUDA=ON pip install -q ".[test]" 2>&1 | tail -5
  python -c "import simattr_fast as sa; print('cuda_available', sa.cuda_available())"
} > "$OUT/build.log" 2>&1
timeout 240 python -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py tests/test_evaluation.py \
  > "$OUT/pytest_gpu.log" 2>&1
echo "pytest exit $?" >> "$OUT/pytest_gpu.log"
SIMATTR_CUDA_DEBUG=0 timeout 300 python benchmarks/bench_gpu.py --out "$OUT/bench_gpu.json" --esvm-seconds 60 \
  > "$OUT/bench_gpu.log" 2>&1
echo "bench exit $?" >> "$OUT/bench_gpu.log"
tail -3 "$OUT/pytest_gpu.log" "$OUT/bench_gpu.log"
