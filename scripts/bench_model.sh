#!/usr/bin/env bash
# vista vs transformers on the same small config, 32 new tokens, greedy, same machine, same
# thread count. FAMILY=instructblip (default: ViT 12x384, Q-Former 4 layers, LLaMA 8x512) or
# FAMILY=llava (LLaVA-1.5: CLIP ViT 12x384 at 224 px, 256 image tokens, LLaMA 8x512) or
# FAMILY=qwen3_vl (Qwen3-VL: vision 12x384, 108 image tokens per 300x400 image, decoder 8x512).
#
#   scripts/bench_model.sh                      # CPU, f32, batches 1 and 8, 2 threads
#   FAMILY=llava scripts/bench_model.sh         # the same for LLaVA (target/bench-model-llava)
#   DEVICE=cuda DTYPE=bf16 BATCHES=1,8,32 FEATURES=cuda scripts/bench_model.sh
#   PYTHON=/path/to/venv/bin/python scripts/bench_model.sh   # a Python with torch + transformers
#
# Prints one JSON line per (implementation, batch) and the vista/transformers ratio, plus the
# peak RSS of the vista run next to the size of the weights.
set -euo pipefail
cd "$(dirname "$0")/.."
FAMILY=${FAMILY:-instructblip}
case "$FAMILY" in
  instructblip) DIR=${BENCH_DIR:-target/bench-model} ;;
  llava) DIR=${BENCH_DIR:-target/bench-model-llava} ;;
  qwen3_vl) DIR=${BENCH_DIR:-target/bench-model-qwen3-vl} ;;
  *) echo "FAMILY must be instructblip, llava or qwen3_vl, not $FAMILY" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cpu}
DTYPE=${DTYPE:-f32}
BATCHES=${BATCHES:-1,8}
NEW=${NEW:-32}
THREADS=${THREADS:-2}
FEATURES=${FEATURES:-}
# PROFILE=release for a release build (a cold one also builds DataFusion: ~30 min on 2 cores);
# the dev profile already compiles candle, gemm and the image codecs at opt-level 3, but vista's
# own kernels at opt-level 1 with debug assertions (2-5x slower): ratios need PROFILE=release.
PROFILE=${PROFILE:-dev}
PROFILE_FLAG=$([ "$PROFILE" = release ] && echo --release || true)
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

[ -f "$DIR/config.json" ] || "$PYTHON" scripts/bench_model.py make "$DIR" --family "$FAMILY"
"$PYTHON" scripts/bench_model.py run "$DIR" --family "$FAMILY" --device "$DEVICE" \
  --dtype "$DTYPE" --batches "$BATCHES" --new "$NEW" --threads "$THREADS" | tee "$DIR/transformers.jsonl"

cargo test $PROFILE_FLAG ${FEATURES:+--features $FEATURES} --test model --no-run
BIN=$(cargo test $PROFILE_FLAG ${FEATURES:+--features $FEATURES} --test model --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import sys,json
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="model": print(m["executable"])' | tail -1)
VISTA_BENCH_MODEL=$DIR VISTA_BENCH_DEVICE=$DEVICE VISTA_BENCH_DTYPE=$DTYPE VISTA_BENCH_BATCHES=$BATCHES \
  VISTA_BENCH_NEW=$NEW /usr/bin/time -v "$BIN" --ignored --exact bench_generate --nocapture 2> "$DIR/time.txt" \
  | grep '^{' | tee "$DIR/vista.jsonl"

python3 - "$DIR" <<'PY'
import json, os, re, sys
d = sys.argv[1]
hf = {r["batch"]: r for r in map(json.loads, open(f"{d}/transformers.jsonl"))}
vi = {r["batch"]: r for r in map(json.loads, open(f"{d}/vista.jsonl"))}
for b in sorted(vi):
    if b in hf:
        print(f"batch {b}: vista {vi[b]['images_per_s']:.2f} img/s, transformers {hf[b]['images_per_s']:.2f} img/s, ratio {vi[b]['images_per_s'] / hf[b]['images_per_s']:.2f}x")
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{d}/time.txt").read()).group(1)) * 1024
weights = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".safetensors"))
print(f"peak RSS {rss / 2**20:.1f} MiB, weights {weights / 2**20:.1f} MiB, ratio {rss / weights:.2f}")
PY
