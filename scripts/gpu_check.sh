#!/usr/bin/env bash
# The GPU run in one script (under 10 minutes on one H100 with a warm cargo cache):
#   1. build with `--features cuda` (release), the toolkit from scripts/cuda_env.sh unless nvcc
#      is already on PATH;
#   2. parity: every recorded case of every tiny checkpoint (InstructBLIP/VistaLLM, LLaVA,
#      LLaVA-NeXT, Qwen3-VL) on
#      cuda:0 in f32 and in bf16 against the CPU in f32 (tests/model/device.rs states the
#      tolerances: 1e-3 relative and identical outputs in f32, 0.08 relative in bf16);
#   3. speed: vista_generate against transformers' generate at batch 32, 32 new tokens, bf16, for
#      each family (scripts/bench_model.sh; needs torch with CUDA and transformers): generation
#      alone, then the whole `vista sql` process over 64 PNG files against a Python process.
# Prints one JSON line per parity case and per benchmark row; exits non-zero if a step fails.
#
#   scripts/gpu_check.sh              # on a machine with an NVIDIA GPU and driver
#   scripts/gpu_check.sh --dry-run    # no GPU: the same parity checks on the CPU in f32 and bf16
#                                     # (dev build), and the steps of the real run printed
# DRY_RUN_CARGO_FLAGS: cargo flags of the dry run's build (CI passes its own, so that the test
# binary it already built is reused).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/cargo_executable.sh
source scripts/cargo_executable.sh

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
step() { printf '{"check":"step","step":"%s","dry_run":%s}\n' "$1" "$([ $DRY = 1 ] && echo true || echo false)"; }

test_binary() {  # the `model` test binary of a build with the given cargo flags
  cargo_executable model test "$@" --test model --no-run
}

parity() {  # device dtype binary
  VISTA_DEVICE=$1 VISTA_DTYPE=$2 "$3" --ignored --exact device::device_parity --nocapture --test-threads 1 \
    | grep '^{'
}

if [ $DRY = 1 ]; then
  step "cuda toolchain"
  # shellcheck source=scripts/cuda_env.sh
  source scripts/cuda_env.sh --print
  step "build (dev profile, CPU)"
  # shellcheck disable=SC2086
  cargo test ${DRY_RUN_CARGO_FLAGS:-} --test model --no-run -q
  # shellcheck disable=SC2086
  BIN=$(test_binary ${DRY_RUN_CARGO_FLAGS:-})
  for dtype in f32 bf16; do
    step "parity cpu $dtype"
    parity cpu "$dtype" "$BIN"
  done
  step "would run: FAMILY=instructblip|llava|llava_next|qwen3_vl DEVICE=cuda DTYPE=bf16 BATCHES=32 FEATURES=cuda PROFILE=release scripts/bench_model.sh"
  exit 0
fi

START=$(date +%s)
step "cuda toolchain"
if ! command -v nvcc >/dev/null; then
  # shellcheck source=scripts/cuda_env.sh
  source scripts/cuda_env.sh
fi
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

step "build (release, cuda)"
cargo build --release --features cuda --bin vista
cargo test --release --features cuda --test model --no-run -q
BIN=$(test_binary --release --features cuda)
for dtype in f32 bf16; do
  step "parity cuda:0 $dtype"
  parity cuda:0 "$dtype" "$BIN"
done

for family in instructblip llava llava_next qwen3_vl; do
  step "benchmark $family batch 32 bf16"
  FAMILY=$family DEVICE=cuda DTYPE=bf16 BATCHES=32 NEW=32 FEATURES=cuda PROFILE=release \
    BENCH_DIR=target/bench-gpu-$family scripts/bench_model.sh | grep '^{'
done
printf '{"check":"done","seconds":%d}\n' $(( $(date +%s) - START ))
