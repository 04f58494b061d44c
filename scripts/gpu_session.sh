#!/usr/bin/env bash
# Every GPU check of the fused kernels in one run, for a machine with a CUDA GPU, nvcc and a CUDA
# build of PyTorch but no TensorRT (the lent device machines). Writes logs and the benchmark JSON
# to $OUT (default build/gpu-session):
#   1. environment (nvidia-smi, nvcc, torch)
#   2. the PyTorch harness build (the plugin's own kernels)
#   3. compute-sanitizer memcheck + racecheck on small calls of every kernel (the CPU emulator
#      cannot see races or out-of-bounds addresses)
#   4. pytest -m gpu: kernels vs the PyTorch reference on every layer of the 512² net, whole net
#   5. benchmarks/gpu_kernels.py --save: fused vs cuDNN per layer, whole-net img/s
# pconv is put on the path through a link tree (no install: the machine's setuptools may be older
# than the pyproject asks for, and nothing can be downloaded there).
#
#   bash scripts/gpu_session.sh [--quick]    # --quick: benchmark batch 1 only, fewer iterations
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/build/gpu-session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
QUICK=${1:-}

SRC=$(mktemp -d)/src
mkdir -p "$SRC/pconv"
for f in "$ROOT"/pconv/*; do ln -s "$f" "$SRC/pconv/$(basename "$f")"; done
for stage in training export plugins runtime; do ln -s "$ROOT/$stage" "$SRC/pconv/$stage"; done
export PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}"
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$(mktemp -d)}  # the harness build goes to a fresh cache

status=0
step() { echo; echo "== $*"; }

step environment
{ nvidia-smi; nvcc --version; "$PY" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"; } \
    2>&1 | tee "$OUT/environment.txt"

step harness build
"$PY" -c "from pconv.plugins.torch_harness import load_kernels; load_kernels(verbose=True)" >"$OUT/harness_build.log" 2>&1 \
    || { tail -50 "$OUT/harness_build.log"; echo "harness build failed"; exit 1; }
tail -3 "$OUT/harness_build.log"

step compute-sanitizer
cat >"$OUT/sanitize_calls.py" <<'EOF'
"""Small calls of every kernel (FP32, FP16 NCHW, FP16 channels-last with both tile widths)."""
import torch

from pconv.config import ModelConfig
from pconv.plugins.torch_harness import fused_partial_conv

for spec in ModelConfig(depth=4, width=0.5).layer_specs():
    size = 24
    g = torch.Generator(device="cuda").manual_seed(0)
    k = len(spec.mask_channel_weights)
    m = (torch.rand(2, k, size, size, device="cuda", generator=g) > 0.4).float()
    x = torch.randn(2, spec.in_channels, size, size, device="cuda", generator=g)
    w = torch.randn(spec.out_channels, spec.in_channels, spec.kernel, spec.kernel, device="cuda", generator=g)
    b = torch.randn(spec.out_channels, device="cuda", generator=g)
    fused_partial_conv(x, m, w, b, spec)
    fused_partial_conv(x.half(), m, w.half(), b.half(), spec)
    if spec.in_channels % 8 == 0 and spec.out_channels % 8 == 0:
        fused_partial_conv(x.half(), m, w.half(), b.half(), spec, channels_last=True)
torch.cuda.synchronize()
print("calls done")
EOF
for tool in memcheck racecheck; do
    if command -v compute-sanitizer >/dev/null; then
        timeout 300 compute-sanitizer --tool "$tool" --error-exitcode 9 "$PY" "$OUT/sanitize_calls.py" \
            >"$OUT/sanitizer_$tool.log" 2>&1
        rc=$?
        echo "$tool exit $rc"; tail -4 "$OUT/sanitizer_$tool.log"
        [ "$rc" -eq 0 ] || status=1
    else
        echo "compute-sanitizer not found: skipped"
    fi
done

step "pytest -m gpu"
"$PY" -m pytest -m gpu -q -p no:cacheprovider tests/test_plugin_gpu.py -rs --junitxml="$OUT/gpu_tests.xml" \
    2>&1 | tee "$OUT/gpu_tests.log" | tail -40
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step benchmark
if [ "$QUICK" = "--quick" ]; then bench_args=(--batches 1 --iters 10); else bench_args=(); fi
"$PY" benchmarks/gpu_kernels.py --save "${bench_args[@]}" >"$OUT/gpu_kernels.json" 2>"$OUT/gpu_kernels.log"
[ $? -eq 0 ] || status=1
tail -30 "$OUT/gpu_kernels.log"
echo
echo "gpu_session: exit $status; logs in $OUT"
exit $status
