#!/usr/bin/env bash
# The curation-like query (mask -> mask_to_sequence -> format_points, plus the reconstruction
# IoU, -> Parquet) in-process and on local Ballista clusters of 1 and 2 executors (docs/cluster.md).
#
#   python3 scripts/make_coco_bench.py 20000 /tmp/cb
#   vista import coco-instances /tmp/cb/instances.json --out /tmp/cbi
#   scripts/cluster_bench.sh VISTA_BINARY /tmp/cbi/instances.parquet [RUNS] [TASKS_PER_EXECUTOR]
set -euo pipefail
VISTA=${1:?vista binary built with --features cluster}
INPUT=${2:?instances.parquet}
RUNS=${3:-3}
TASKS=${4:-1}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

SQL="COPY (SELECT instance_id, s AS seq, format_points(s, style => 'decimal') AS target,
              mask_iou(mask, polygon_to_mask(s, mask['size'][2], mask['size'][1])) AS recon_iou
       FROM (SELECT instance_id, mask, mask_to_sequence(mask, n => 32) AS s FROM '$INPUT'))
      TO '$WORK/out.parquet'"
ROWS=$("$VISTA" sql --format csv -c "SELECT count(*) AS n FROM '$INPUT'" | tail -1)

run() { # label, extra args
  local label=$1; shift
  for r in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$VISTA" sql "$@" -c "$SQL" >/dev/null
    t1=$(date +%s.%N)
    python3 -c "import sys; s=$t1-$t0; print(f'$label run $r: {s:.2f} s, {$ROWS/s:.0f} rows/s')"
  done
}

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run "in-process" --set datafusion.execution.target_partitions=2

for n in 1 2; do
  SP=$(port)
  "$VISTA" cluster scheduler --bind "127.0.0.1:$SP" >"$WORK/sched$n.log" 2>&1 &
  PIDS+=($!)
  sleep 1
  for i in $(seq "$n"); do
    EP=$((SP + 10 * i))
    VISTA_LOG=info "$VISTA" cluster executor --scheduler "127.0.0.1:$SP" --bind "127.0.0.1:$EP" \
      --concurrent-tasks "$TASKS" >"$WORK/ex$n-$i.log" 2>&1 &
    PIDS+=($!)
    until grep -qs "registration succeed" "$WORK/ex$n-$i.log"; do sleep 0.2; done
  done
  run "$n executor(s) x $TASKS task(s)" --cluster "df://127.0.0.1:$SP"
  for i in $(seq "$n"); do
    echo "  executor $i ran $(grep -c 'Execute task' "$WORK/ex$n-$i.log") tasks"
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  PIDS=()
  sleep 1
done
