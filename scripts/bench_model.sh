#!/usr/bin/env bash
# vista vs transformers on the same small config, 32 new tokens, greedy, same machine, same
# thread count. FAMILY=instructblip (default: ViT 12x384, Q-Former 4 layers, LLaMA 8x512) or
# FAMILY=llava (LLaVA-1.5: CLIP ViT 12x384 at 224 px, 256 image tokens, LLaMA 8x512) or
# FAMILY=llava_next (the same network tiling each image on 224 px tiles: 1,048-1,246 image
# tokens per 300-370x400 image) or
# FAMILY=qwen3_vl (Qwen3-VL: vision 12x384, 108 image tokens per 300x400 image, decoder 8x512).
#
#   scripts/bench_model.sh                      # CPU, f32, batches 1 and 8, 2 threads
#   FAMILY=llava scripts/bench_model.sh         # the same for LLaVA (target/bench-model-llava)
#   DEVICE=cuda DTYPE=bf16 BATCHES=1,8,32 FEATURES=cuda scripts/bench_model.sh
#   PYTHON=/path/to/venv/bin/python scripts/bench_model.sh   # a Python with torch + transformers
#
# Prints one JSON line per (implementation, batch) and the vista/transformers ratio, plus the
# peak RSS of the vista run next to the size of the weights.
#
# Then the whole process (SQL_ROWS rows, default 64; SQL_ROWS=0 skips it): for each batch size,
# `vista sql` running `vista_generate(read_bytes(path), ...)` over a CSV of SQL_ROWS distinct
# PNG files against `bench_model.py serve` (Python, import and load included) doing the same
# rows, both exactly NEW tokens a row (vista.min_new_tokens). Reports wall time, rows/s, the
# ratio, each process's peak RSS (vista's next to the weights) and how many answers are equal.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/cargo_executable.sh
source scripts/cargo_executable.sh
FAMILY=${FAMILY:-instructblip}
case "$FAMILY" in
  instructblip) DIR=${BENCH_DIR:-target/bench-model} ;;
  llava) DIR=${BENCH_DIR:-target/bench-model-llava} ;;
  llava_next) DIR=${BENCH_DIR:-target/bench-model-llava-next} ;;
  qwen3_vl) DIR=${BENCH_DIR:-target/bench-model-qwen3-vl} ;;
  *) echo "FAMILY must be instructblip, llava, llava_next or qwen3_vl, not $FAMILY" >&2; exit 2 ;;
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
BIN=$(cargo_executable model test $PROFILE_FLAG ${FEATURES:+--features $FEATURES} --test model --no-run)
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

SQL_ROWS=${SQL_ROWS:-64}
[ "$SQL_ROWS" -gt 0 ] || exit 0
SQL=$DIR/sql
[ "$(tail -n +2 "$SQL/images.csv" 2>/dev/null | wc -l)" = "$SQL_ROWS" ] \
  || "$PYTHON" scripts/bench_model.py images "$DIR" --rows "$SQL_ROWS"
cargo build $PROFILE_FLAG ${FEATURES:+--features $FEATURES} --bin vista
VISTA=$(cargo_executable vista build $PROFILE_FLAG ${FEATURES:+--features $FEATURES} --bin vista)
# bench_generate's instruction: LLaVA's and Qwen's chat turns put the image first.
INSTRUCTION=$([ "$FAMILY" = instructblip ] && echo "Describe this image <image> as simply as possible." \
  || echo "Describe this image as simply as possible.")
for b in ${BATCHES//,/ }; do
  /usr/bin/time -v "$PYTHON" scripts/bench_model.py serve "$DIR" --family "$FAMILY" --device "$DEVICE" \
    --dtype "$DTYPE" --batch "$b" --new "$NEW" --threads "$THREADS" --out "$SQL/transformers_$b.jsonl" \
    2> "$SQL/transformers_time_$b.txt"
  /usr/bin/time -v "$VISTA" sql -q --set model="$DIR" --set device="$DEVICE" --set dtype="$DTYPE" \
    --set batch_size="$b" --set max_new_tokens="$NEW" --set min_new_tokens="$NEW" \
    --table images="$SQL/images.csv" --out "$SQL/vista_$b.ndjson" \
    -c "SELECT path, vista_generate(read_bytes(path), '$INSTRUCTION') AS text FROM images" \
    2> "$SQL/vista_time_$b.txt"
done

python3 - "$DIR" "$BATCHES" "$SQL_ROWS" <<'PY'
import json, os, re, sys
d, batches, rows = sys.argv[1], [int(b) for b in sys.argv[2].split(",")], int(sys.argv[3])
weights = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".safetensors"))

def usage(path):
    text = open(path).read()
    h, m, s = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", text).groups()
    wall = int(h or 0) * 3600 + int(m) * 60 + float(s)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) * 1024
    return wall, rss

for b in batches:
    sq = f"{d}/sql"
    vw, vr = usage(f"{sq}/vista_time_{b}.txt")
    tw, tr = usage(f"{sq}/transformers_time_{b}.txt")
    vista = {r["path"]: r["text"] for r in map(json.loads, open(f"{sq}/vista_{b}.ndjson"))}
    hf = {r["path"]: r["text"] for r in map(json.loads, open(f"{sq}/transformers_{b}.jsonl"))}
    same = sum(vista.get(p) == t for p, t in hf.items())
    print(json.dumps({"whole_process": True, "batch": b, "rows": rows,
                      "vista_s": round(vw, 2), "transformers_s": round(tw, 2),
                      "vista_rows_per_s": round(rows / vw, 3), "transformers_rows_per_s": round(rows / tw, 3),
                      "ratio": round(tw / vw, 3), "vista_peak_rss_mib": round(vr / 2**20, 1),
                      "transformers_peak_rss_mib": round(tr / 2**20, 1),
                      "vista_rss_over_weights": round(vr / weights, 3), "equal_answers": f"{same}/{len(hf)}"}))
PY
