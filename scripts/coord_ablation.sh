#!/usr/bin/env bash
# The coordinate ablation of docs/train.md at test scale: the recipe of
# tests/train.rs::the_recipe_localises_objects_above_the_image_blind_floor (small model, 48 px,
# 100 stage-0 + 150 stage-1 steps on the 400 REC questions of one-object scenes), trained once
# per variant (coordinate style, coordinate initialisation, stage 0 on/off) and scored on 80
# held-out REC questions as queries/demo.sql scores REC (Acc@0.5) with the share that parses.
#
#   scripts/coord_ablation.sh [WORK_DIR]      (default: ./coord-ablation; 3-5 minutes a
#                                              variant on 2 cores, release build)
set -euo pipefail
cd "$(dirname "$0")/.."
VISTA="$(realpath "${VISTA:-target/release/vista}")"
[ -x "$VISTA" ] || { echo "build vista first: cargo build --release" >&2; exit 1; }
WORK="$(realpath -m "${1:-coord-ablation}")"
mkdir -p "$WORK"

# One-object REC sets in a coordinate style: train (seed 3, 400) and test (seed 4, 80).
make_sets() {
  local style=$1 split seed n
  for spec in "train 3 400" "test 4 80"; do
    read -r split seed n <<<"$spec"
    [ -d "$WORK/$style/$split/rec" ] && continue
    "$VISTA" synth --out "$WORK/$style/$split-all" --seed "$seed" --samples-per-task "$n" \
      --image-size 48 --max-objects 1 --style "$style" >/dev/null
    mkdir -p "$WORK/$style/$split/rec"
    (cd "$WORK/$style" && "$VISTA" sql -c "COPY (SELECT * FROM '$split-all/samples/' \
      WHERE task = 'rec' ORDER BY sample_id) TO '$split/rec/part-0.parquet'" >/dev/null)
  done
}

# variant NAME STYLE STAGES... : STAGES are the train flags that differ between variants.
variant() {
  local name=$1 style=$2
  shift 2
  make_sets "$style"
  local model="$WORK/model-$name" start
  rm -rf "$model"
  start=$(date +%s)
  "$VISTA" train --samples "$WORK/$style/train/rec" --out "$model" --size small --image-size 48 \
    --seed 11 --pretrain-batch 16 --probe-attention 1 --stage2-steps 0 --batch-size 16 \
    --vision-position-std 1 --vocab-size 800 --checkpoint-every 0 --quiet "$@" >"$WORK/$name.log"
  local secs=$(( $(date +%s) - start ))
  local scores
  scores=$(cd "$WORK/$style" && "$VISTA" sql --format csv -c "SET vista.model = '$model';
    SELECT AVG(CASE WHEN box_iou(p['boxes'][1], b) > 0.5 THEN 1.0 ELSE 0.0 END) AS acc,
           AVG(CASE WHEN p['status'] = 'ok' THEN 1.0 ELSE 0.0 END) AS parsed
    FROM (SELECT parse_boxes(vista_generate(make_array(image), instruction), 'pixel', width,
                             height) AS p, boxes[1] AS b FROM 'test/rec/')" | tail -1)
  echo "| $name | ${scores%,*} | ${scores#*,} | $secs |"
}

RECIPE=(--pretrain-steps 100 --stage1-steps 150 --freeze-tokenizer)
echo "| variant | REC Acc@0.5 | parses | train s |"
echo "|---|---:|---:|---:|"
variant bins-cosine bins "${RECIPE[@]}" --coord-init cosine
variant bins-independent bins "${RECIPE[@]}" --coord-init independent
variant bins-quadratic bins "${RECIPE[@]}" --coord-init quadratic
variant decimal decimal "${RECIPE[@]}"
variant no-stage-0 bins --pretrain-steps 0 --stage1-steps 250 --train-vision --coord-init cosine
