#!/usr/bin/env bash
# RES curation on N COCO polygon masks: vista vs Daft + an OpenCV Python UDF, same machine, same
# run. Both start from the same COCO instances.json and end with a Parquet file of targets:
#   vista: `vista import coco-instances` + `vista curate res` (decode mask, 32 adaptive contour
#          points, decimal target text, reconstruction IoU redrawn from the text, filters,
#          sharded Parquet + manifest + report);
#   Daft:  scripts/bench_curation_daft.py (decode with pycocotools, cv2.findContours, 32 points
#          evenly spaced by arc length, target text, cv2.fillPoly + IoU, write_parquet).
# Prints rows/s and peak RSS of both at each N, and the ratio; memory should stay flat as N grows.
#
#   scripts/bench_curation.sh [N ...]        (default: 5000 10000 20000)
#   MEMORY_LIMIT=0 scripts/bench_curation.sh 20000 80000   (vista's --memory-limit; default
#                                                          256M, the CLI's; 0 = none)
#   NO_DAFT=1 ...                            (vista only)
#
# Needs: a release build (`cargo build --release`), python3 with numpy, pycocotools,
# opencv-python-headless and daft (`pip install daft`).
set -euo pipefail
cd "$(dirname "$0")/.."
VISTA="${VISTA:-target/release/vista}"
[ -x "$VISTA" ] || { echo "build vista first: cargo build --release" >&2; exit 1; }
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(5000 10000 20000)
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Wall seconds and peak RSS (KB) of a command, as "SECONDS KB".
measure() {
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" \
    || { cat "$WORK/err" >&2; exit 1; }
  cat "$WORK/time"
}

printf "%-7s %-12s %-10s %-12s %-10s %-8s\n" N vista_rows/s vista_MB daft_rows/s daft_MB ratio
for n in "${SIZES[@]}"; do
  python3 scripts/make_coco_bench.py "$n" "$WORK/coco$n" >/dev/null
  read -r t_imp m_imp < <(measure "$VISTA" import coco-instances "$WORK/coco$n/instances.json" \
    --out "$WORK/imp$n" --quiet)
  read -r t_cur m_cur < <(measure "$VISTA" curate res --input "$WORK/imp$n" --out "$WORK/cur$n" \
    --phash-distance -1 --points 32 --style decimal --memory-limit "${MEMORY_LIMIT:-256M}")
  if [ -n "${NO_DAFT:-}" ]; then
    daft_json='{"rows_per_s": NaN, "peak_rss_mb": NaN}'
  else
    daft_json="$(python3 scripts/bench_curation_daft.py "$WORK/coco$n/instances.json" \
      "$WORK/daft$n.parquet" --points 32 2>/dev/null | tail -1)"
  fi
  python3 - "$n" "$t_imp" "$m_imp" "$t_cur" "$m_cur" "$daft_json" <<'PY'
import json, sys
n, t_imp, m_imp, t_cur, m_cur = int(sys.argv[1]), *map(float, sys.argv[2:6])
d = json.loads(sys.argv[6])
vista_rps = n / (t_imp + t_cur)
daft_rps = d["rows_per_s"]
daft_mb = d["peak_rss_mb"] + d.get("peak_rss_child_mb", 0.0)
print(f"{n:<7} {vista_rps:<12.0f} {max(m_imp, m_cur) / 1024:<10.0f} {daft_rps:<12.0f} "
      f"{daft_mb:<10.0f} {vista_rps / daft_rps:<8.2f}")
PY
done
