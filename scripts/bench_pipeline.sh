#!/usr/bin/env bash
# SQL overhead of vista_generate: the same N rows through `SELECT vista_generate(...)` and through
# the model's `generate` called directly in a Rust loop, at batch sizes 1, 8 and 32, on CPU.
# Prints images/s for both and the overhead of SQL relative to the direct loop (target <= 5%),
# and fails unless both paths generate the same texts for every row.
#
#   scripts/bench_pipeline.sh [ROWS] [MODEL_DIR] [MAX_NEW_TOKENS]
#
# Defaults: 64 rows, the tiny test checkpoint, 16 new tokens. Builds the eval test binary in
# release mode (once) and runs its ignored `bench_pipeline` test.
set -euo pipefail
cd "$(dirname "$0")/.."
export VISTA_BENCH_ROWS="${1:-64}"
[ -n "${2:-}" ] && export VISTA_BENCH_MODEL="$2"
export VISTA_BENCH_TOKENS="${3:-16}"
# One DataFusion partition per core and candle's threads should not fight over the cores.
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
cargo test --release --test eval -- --ignored --exact bench_pipeline --nocapture --test-threads=1
