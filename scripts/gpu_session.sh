#!/usr/bin/env bash
# One prepared GPU session for issue 12 (H200 machine: torch 2.11, no gradio/pytorch-fid/pytest
# promised, nothing installable). Runs in priority order under one time budget and writes at most
# 7 files into $OUT:
#
#   session.log      everything printed, stage by stage, with timings
#   env.json         GPU, driver, torch/CUDA versions, precision auto-detection
#   checks.json      scripts/gpu_checks.py: fp32 PatchNCE under CUDA autocast, bf16/fp32 steps, GEMM ceilings
#   bench_bf16.json  batched bf16 throughput (--batch-size 8) vs the bf16 GEMM ceiling
#   bench_fp32.json  Table 5.1 rows on CUDA (cut, fastcut, cyclegan, sincut; G at 256/512/1024),
#                    side by side with the reference when it was carried along
#   pytest.log       the CUDA-relevant test files, only if pytest is importable there
#   bench_sizes.json training at 512² and 1024² (last; skipped when the budget is spent)
#
# Usage (from the repository root):
#   OUT=/tmp/out BUDGET_S=330 bash scripts/gpu_session.sh
# With the reference implementation side by side, materialise it first into an ignored folder and
# carry it (the run tool's carry=["tmp/reference"]):
#   mkdir -p tmp/reference && git --git-dir /work/.mirror/taesungp+contrastive-unpaired-translation/repo \
#     archive HEAD models options util data | tar -x -C tmp/reference
# SMOKE=1 runs the same stages on the CPU with tiny sizes (to check the script itself, anywhere).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the output folder}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-330}
REF=${REF:-tmp/reference}
PY=${PYTHON:-$(command -v python3 || command -v python)}  # the GPU image names its torch Python python3
LOG="$OUT/session.log"
START=$(date +%s)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [ "${SMOKE:-0}" = 1 ]; then
  # (no SinCUT beside the reference: the reference runs its paper configuration, ~15 s a step on a CPU)
  DEVICE=cpu; ITERS=1; SIZES_MAIN=32; INFER=32,64; BIG=64; BATCH=2; PRESETS=fastcut; BF16_PRESETS=fastcut; BF16_INFER=64
  CHECK_ARGS=(--only environment,patchnce_fp32_under_autocast)  # the training checks take minutes on a CPU
else
  CHECK_ARGS=()
  DEVICE=cuda; ITERS=10; SIZES_MAIN=256; INFER=256,512,1024; BIG=512,1024; BATCH=8; PRESETS=cut,fastcut,cyclegan,sincut
  BF16_PRESETS=cut,fastcut,cyclegan; BF16_INFER=512
fi

left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
# stage NAME MIN_SECONDS MAX_SECONDS command...: runs when at least MIN_SECONDS are left, for at most MAX_SECONDS
stage() {
  local name=$1 min=$2 max=$3; shift 3
  local remaining; remaining=$(left)
  if [ "$remaining" -lt "$min" ]; then
    echo "=== $name: skipped ($remaining s left, needs $min)" | tee -a "$LOG"; return 0
  fi
  [ "$remaining" -lt "$max" ] && max=$remaining
  echo "=== $name: up to $max s ($(date -u +%H:%M:%S))" | tee -a "$LOG"
  local t0; t0=$(date +%s)
  timeout --signal=TERM --kill-after=10 "$max" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "=== $name: rc=$rc after $(( $(date +%s) - t0 )) s" | tee -a "$LOG"
}

REF_ARGS=()
if [ -d "$REF/models" ] && [ -d "$REF/options" ]; then REF_ARGS=(--reference "$REF"); fi
echo "device=$DEVICE budget=${BUDGET_S}s reference=${REF_ARGS[*]:-none} python=$("$PY" -c 'import sys; print(sys.version.split()[0])')" | tee "$LOG"

stage env 20 40 "$PY" scripts/gpu_checks.py --env --device "$DEVICE" --out "$OUT/env.json"
stage checks 60 150 "$PY" scripts/gpu_checks.py --device "$DEVICE" --out "$OUT/checks.json" ${CHECK_ARGS[@]+"${CHECK_ARGS[@]}"}
# Bench rows land in the JSON file as they are measured (--partial): a stage cut short keeps its rows.
stage bench_bf16 40 120 "$PY" -m cutcore.bench --device $DEVICE --preset $BF16_PRESETS --size $SIZES_MAIN \
  --infer-sizes $BF16_INFER --batch-size $BATCH --precision bf16 --iters $ITERS --channels-last --json --partial "$OUT/bench_bf16.json"
# Our training rows channels-last, as `train` runs on CUDA by default; inference rows and the reference's stay
# NCHW, as translate and the reference run.
stage bench_fp32 60 200 "$PY" -m cutcore.bench --device $DEVICE --preset $PRESETS --size $SIZES_MAIN \
  --infer-sizes $INFER --iters $ITERS --channels-last ${REF_ARGS[@]+"${REF_ARGS[@]}"} --json --partial "$OUT/bench_fp32.json"
if "$PY" -c "import pytest" 2>/dev/null; then
  stage pytest 30 90 sh -c "'$PY' -m pytest -q -p no:cacheprovider tests/test_losses.py tests/test_hardware.py \
    tests/test_bench.py >'$OUT/pytest.log' 2>&1"
else
  echo "=== pytest: not importable here, skipped (scripts/gpu_checks.py covers the CUDA checks)" | tee -a "$LOG"
fi
stage bench_sizes 60 150 "$PY" -m cutcore.bench --device $DEVICE --preset "$(echo $PRESETS | sed 's/,*sincut[^,]*//')" \
  --size $BIG --iters $ITERS --channels-last --json --partial "$OUT/bench_sizes.json"

# A failed bench row only shows as its stage's rc=1: name each one where the output tail shows it.
"$PY" - "$OUT"/bench_*.json <<'EOF' | tee -a "$LOG"
import json, os, sys
for path in sys.argv[1:]:
    try:
        rows = json.load(open(path))
    except (OSError, ValueError) as e:  # no such file, or one cut off mid-write
        print(f"=== {os.path.basename(path)}: unreadable ({e})")
        continue
    for r in rows:
        if "error" in r:
            print(f"=== failed row in {os.path.basename(path)}: {r['impl']} {r['kind']} {r['preset']} {r['size']}: "
                  f"{r['error'][:300]}")
EOF
echo "=== done after $(( $(date +%s) - START )) s; files: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$LOG"
