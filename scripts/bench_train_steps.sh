#!/usr/bin/env bash
# Times the shipped recipe's training steps for one or more `vista` binaries, one after the
# other on the same machine, so that two builds (say, before and after a change) compare side
# by side: stage 0 from a fresh model, then stage 1 from that stage 0, with the options of
# scripts/train_demo_model.sh. Prints the seconds the steps took (as `vista train` reports them,
# without loading the samples) and the peak RSS of each call. The losses printed must agree
# between binaries that compute the same thing.
#
#   scripts/bench_train_steps.sh [--stage0-steps N] [--stage1-steps M] [--work DIR] VISTA...
set -euo pipefail
S0=30 S1=20 WORK=bench-train-steps
while [ $# -gt 0 ]; do
  case "$1" in
    --stage0-steps) S0=$2; shift 2 ;;
    --stage1-steps) S1=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--stage0-steps N] [--stage1-steps M] [--work DIR] VISTA..." >&2; exit 2; }
mkdir -p "$WORK"
[ -d "$WORK/data/samples" ] || "$1" synth --out "$WORK/data" --seed 7 --samples-per-task 10000 >/dev/null
printf '%-40s %6s %9s %12s %9s %12s %10s\n' binary stage steps seconds s/step loss "peak MB"
for v in "$@"; do
  for stage in 0 1; do
    out="$WORK/run-$stage"
    rm -rf "$out"
    if [ "$stage" = 0 ]; then
      steps=$S0
      args=(--size small --pretrain-steps "$S0" --pretrain-scenes 16 --pretrain-box 32
            --probe-attention 1 --coord-init cosine --vision-position-std 1 --stage1-steps 0)
    else
      steps=$S1
      args=(--init "$WORK/run-0" --pretrain-steps 0 --stage1-steps "$S1")
    fi
    log=$( { /usr/bin/time -f "peak %M" "$v" train --samples "$WORK/data/samples" --out "$out" \
             --seed 7 --stage2-steps 0 --stage1-multi 0.1 --freeze-tokenizer --batch-size 16 \
             "${args[@]}"; } 2>&1 )
    last=$(grep "step $steps/$steps " <<<"$log")
    secs=$(sed -E 's/.* ([0-9.]+)s$/\1/' <<<"$last")
    loss=$(sed -E 's/.*loss ([0-9.]+) .*/\1/' <<<"$last")
    peak=$(sed -nE 's/^peak ([0-9]+)$/\1/p' <<<"$log")
    printf '%-40s %6s %9s %12s %9.3f %12s %10d\n' "$v" "$stage" "$steps" "$secs" \
      "$(echo "$secs / $steps" | bc -l)" "$loss" "$((peak / 1024))"
  done
done
