#!/usr/bin/env bash
# vista vs transformers on the same small InstructBLIP config (ViT 12x384, Q-Former 4 layers,
# LLaMA 8x512, 32 new tokens, greedy), same machine, same thread count.
#
#   scripts/bench_model.sh                      # CPU, f32, batches 1 and 8, 2 threads
#   DEVICE=cuda DTYPE=bf16 BATCHES=1,8,32 FEATURES=cuda scripts/bench_model.sh
#
# Prints one JSON line per (implementation, batch) and the vista/transformers ratio, plus the
# peak RSS of the vista run next to the size of the weights.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${BENCH_DIR:-target/bench-model}
DEVICE=${DEVICE:-cpu}
DTYPE=${DTYPE:-f32}
BATCHES=${BATCHES:-1,8}
NEW=${NEW:-32}
THREADS=${THREADS:-2}
FEATURES=${FEATURES:-}
# PROFILE=release for a release build (a cold one also builds DataFusion: ~30 min on 2 cores);
# the dev profile already compiles candle, gemm and the image codecs at opt-level 3.
PROFILE=${PROFILE:-dev}
PROFILE_FLAG=$([ "$PROFILE" = release ] && echo --release || true)
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

[ -f "$DIR/config.json" ] || python3 scripts/bench_model.py make "$DIR"
python3 scripts/bench_model.py run "$DIR" --device "$DEVICE" --dtype "$DTYPE" \
  --batches "$BATCHES" --new "$NEW" --threads "$THREADS" | tee "$DIR/transformers.jsonl"

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
