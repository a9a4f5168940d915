#!/usr/bin/env bash
# Issue 13, after the GPU call: the six models into weights/<preset>/, scored on the 138 held-out tiles on
# this machine's CPU, their cards rewritten with the metrics, the size caps checked, one results table.
#
#   bash scripts/sat2map_home.sh FILES_AT        # FILES_AT: the run tool's files_at (sat2map_<preset>.tar ...)
#   WEIGHTS=/tmp/w MAX_IMAGES=4 bash scripts/sat2map_home.sh /tmp/out     # a quick check elsewhere
#
# JOBS evaluations at a time (default 2, one thread each: the 2-core machine). ~2 s a tile: ~5 min a model.
set -eu
cd "$(dirname "$0")/.."
FROM=${1:?give the folder holding sat2map_<preset>.tar and sat2map_logs.tar.gz}
WEIGHTS=${WEIGHTS:-weights}
DATA=${DATA:-../shared/data/sat2map}
SPLIT=${SPLIT:-weights/sat2map_val.txt}
LOGS=${LOGS:-runs/sat2map_gpu_home}
JOBS=${JOBS:-2}
METRICS=${METRICS:-accuracy,rmse,swd}
PY=${PYTHON:-python}
mkdir -p "$WEIGHTS" "$LOGS"
[ -f "$FROM/sat2map_logs.tar.gz" ] && tar -xzf "$FROM/sat2map_logs.tar.gz" -C "$LOGS"
[ -f "$FROM/session.log" ] && cp "$FROM/session.log" "$LOGS/"

MODELS=()
for t in "$FROM"/sat2map_*.tar; do
  [ -e "$t" ] || { echo "no sat2map_<preset>.tar in $FROM" >&2; exit 1; }
  p=$(basename "$t" .tar); p=${p#sat2map_}
  case "$p" in ""|*/*|.*) echo "odd name: $t" >&2; exit 1;; esac
  rm -rf "${WEIGHTS:?}/$p"
  tar -xf "$t" -C "$WEIGHTS"
  chmod -R u+rw,go+r "$WEIGHTS/$p"
  MODELS+=("$p")
done
echo "models: ${MODELS[*]}"

running=0
for p in "${MODELS[@]}"; do
  OMP_NUM_THREADS=1 "$PY" -m cutcore evaluate --model "$WEIGHTS/$p" --data "$DATA" --phase train --split "$SPLIT" \
    --metrics "$METRICS" --device cpu --out "$WEIGHTS/$p" ${MAX_IMAGES:+--max-images "$MAX_IMAGES"} \
    >"$LOGS/$p.evaluate.log" 2>&1 &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
"$PY" scripts/sat2map_session.py card $(for p in "${MODELS[@]}"; do echo "$WEIGHTS/$p"; done) \
  --samples "$LOGS/samples" | tee "$LOGS/verdict.txt"

over=$(find "$WEIGHTS" -type f -size +10M)
total=$(du -sb "$WEIGHTS" | cut -f1)
echo "weights: $((total / 1024 / 1024)) MiB in all (cap 60 MiB); files over 10 MiB: ${over:-none}"
# (no --bench: weights/bench.json times the default ngf-64 networks on the CPU, not these models)
"$PY" -m cutcore report --runs $(for p in "${MODELS[@]}"; do echo "$WEIGHTS/$p"; done) --out "$LOGS/results.md" || true
[ -z "$over" ] && [ "$total" -le $((60 * 1024 * 1024)) ]
