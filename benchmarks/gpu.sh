#!/usr/bin/env bash
# The GPU benchmark session in one script: `bash benchmarks/gpu.sh [OUT]` (default bench/gpu-<UTC time>).
#
# 1. XLA's --xla_gpu_* defaults: every benchmark at the issue's settings (256 px, training batch 32) in
#    bfloat16, then in float32.
# 2. The usual XLA GPU flags, one at a time, on the training step in bfloat16: no autotuning
#    (--xla_gpu_autotune_level=0) and no Triton GEMMs (--xla_gpu_enable_triton_gemm=false).
# Each run writes OUT/<run>/results.{json,md}; OUT/summary.md puts them side by side (`benchmarks.compare`)
# and then lists each run's full table.
# PROFILE=quick uses the small sizes instead (a smoke test of the script, seconds per benchmark on a GPU).
# The torch side needs a CUDA build of torch; without one the tables say so and show jax-ast alone.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${1:-bench/gpu-$(date -u +%Y%m%d-%H%M%S)}
QUICK=()
if [[ "${PROFILE:-full}" == quick ]]; then QUICK=(--quick); fi
if [[ -e "$OUT" ]]; then echo "$OUT exists; give another directory (nothing is overwritten)" >&2; exit 2; fi
mkdir -p "$OUT"
BASE_FLAGS=${XLA_FLAGS:-}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/nvidia-smi.csv" 2>&1 || true

run() {  # run NAME "EXTRA XLA FLAGS" ARGS...: one benchmarks.all run with those flags added to the caller's
  local name=$1 flags=$2
  shift 2
  echo "=== $name: XLA_FLAGS='$BASE_FLAGS $flags' $*"
  XLA_FLAGS="$BASE_FLAGS $flags" "$PYTHON" -m benchmarks.all "${QUICK[@]}" --out "$OUT/$name" "$@"
}

run default-bf16 "" --dtype bfloat16
run default-f32 "" --dtype float32
run autotune0-bf16 "--xla_gpu_autotune_level=0" --dtype bfloat16 --benchmarks train_step
run no-triton-gemm-bf16 "--xla_gpu_enable_triton_gemm=false" --dtype bfloat16 --benchmarks train_step

RUNS=(default-bf16 default-f32 autotune0-bf16 no-triton-gemm-bf16)
{
  echo "# GPU benchmarks ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  cat "$OUT/nvidia-smi.csv"
  echo
  echo "## jax-ast img/s (% of bf16 peak) per run"
  echo
  "$PYTHON" -m benchmarks.compare "${RUNS[@]/#/$OUT/}"
  for name in "${RUNS[@]}"; do
    echo
    echo "## $name"
    echo
    tail -n +3 "$OUT/$name/results.md"
  done
} > "$OUT/summary.md"
echo "wrote $OUT/summary.md"
