#!/usr/bin/env bash
# Issue 13 in one device call: train the six sat2map models side by side on one H200, with the same
# image budget, export them (fp16) and hand back at most 8 files in $OUT.
#
#   OUT=/tmp/out bash scripts/sat2map_gpu.sh                  # the real run (BUDGET_S=550 s, wall clock)
#   OUT=/tmp/out SMOKE=1 bash scripts/sat2map_gpu.sh          # 2 epochs each of the real recipe (~2-3 min)
#   # on a CPU, end to end with a tiny pack (scripts/sat2map_pack.py --out packs/sat2map_smoke --size 64 --limit 24):
#   OUT=/tmp/out SMOKE=1 DEVICE=cpu PACK=packs/sat2map_smoke LOAD=64 CROP=32 BATCH=2 NGF=8 bash scripts/sat2map_gpu.sh
#
# Run from the repository root with the pack carried (the run tool's carry=["packs/sat2map_256"]).
# GPU_NOTES.md ("Issue 13") gives the exact call. Needs only torch, numpy, pillow, safetensors, tqdm and
# matplotlib: gradio, pytorch_fid and huggingface_hub are blocked (BLOCK_EXTRAS=1) so an import of them
# fails here as it would there.
#
# Same image budget: every run trains E epochs of the 1,226 tiles (E x 154 steps x batch 8 crops).
# E is measured, not guessed: phase 1 trains the first epoch of all six runs at once (constant LR of a
# provisional 1000+1000-epoch schedule), their log.jsonl gives each run's step time on the shared device,
# and E is the largest number of epochs whose remaining steps fit the time left at the SLOWEST run's rate
# (CycleGAN; conservative, since the faster runs finish first and leave it the GPU). Phase 2 resumes
# every run exactly (--resume) with its preset's split of E (CUT/PUT E/2+E/2, FastCUT 3E/4+E/4, CycleGAN
# E/2+E/2) and max_steps = E x 154. A run still going at the deadline is stopped and exported from its
# newest checkpoint (saved every ~tenth of its steps); summary.json says so ("completed": false).
#
# Files in $OUT (8 at most, each <= 16 MiB): sat2map_<preset>.tar (the exported model folder: fp16
# model.safetensors, config.json with the inference scale, README.md card, losses.png, and the held-out
# curve metrics.jsonl/metrics.png: phase 2 scores the pack's heldout/ pairs EVALS times), sat2map_logs.tar.gz
# (summary.json, calibration.json, env.json, every run's log.jsonl/metrics.jsonl/config.json/last samples
# grid and stdout logs), session.log.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the output folder}
mkdir -p "$OUT"
START=$(date +%s)
SMOKE=${SMOKE:-0}
BUDGET_S=${BUDGET_S:-$([ "$SMOKE" = 1 ] && echo 170 || echo 550)}
EXPORT_RESERVE_S=${EXPORT_RESERVE_S:-60}   # exports and packaging after training stops
RESTART_S=${RESTART_S:-25}                 # phase 2's start-up (imports, decoding the pack, cuDNN autotuning)
CAL_MAX_S=${CAL_MAX_S:-$((BUDGET_S * 2 / 5))}
DEVICE=${DEVICE:-cuda}
PACK=${PACK:-packs/sat2map_256}
RUNS=${RUNS:-runs/sat2map_gpu}
MODELS=${MODELS:-$RUNS/models}
PRESETS=${PRESETS:-cut,cut-focal,fastcut,fastcut-focal,put,cyclegan}
LOAD=${LOAD:-256}; CROP=${CROP:-128}; BATCH=${BATCH:-8}; NGF=${NGF:-32}; NBLOCKS=${NBLOCKS:-6}
LR=${LR:-0.0002}; IDT=${IDT:-5}; THREADS=${THREADS:-2}
CAL_EPOCHS=${CAL_EPOCHS:-1}
EVALS=${EVALS:-10}                         # held-out evaluations during phase 2 (the pack's heldout/), 0: none
EVAL_S=${EVAL_S:-4}                        # seconds one takes: 138 tiles, ~1 s of CPU metrics on a quiet CPU (4 s with
                                           # six runs sharing it; the first ~6 s: imports) + the GPU's translations
EPOCHS=${EPOCHS:-$([ "$SMOKE" = 1 ] && echo 2 || echo "")}   # force the total epochs (a rerun of one preset)
HARDWARE=${HARDWARE:-}                     # the model cards' "trained on" (default: from env.json, below)
PY=${PYTHON:-$(command -v python3 || command -v python)}
LOG="$OUT/session.log"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg TQDM_MININTERVAL=${TQDM_MININTERVAL:-5}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

say() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
logtail() { tr '\r' '\n' <"$1" | grep -v '^ *$' | grep -v '[0-9]it/s\|?it/s' | tail -n "$2" | cut -c1-300 | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# Fail as the GPU machine would if anything imported the app's or FID's packages.
if [ "${BLOCK_EXTRAS:-1}" = 1 ]; then
  BLOCK=$(mktemp -d)
  for m in gradio gradio_client pytorch_fid huggingface_hub; do
    echo "raise ImportError('$m: not installed on the GPU machine (blocked by sat2map_gpu.sh)')" >"$BLOCK/$m.py"
  done
  export PYTHONPATH="$BLOCK:$PYTHONPATH"
fi

IFS=, read -r -a P_ALL <<<"$PRESETS"
rm -rf "$RUNS"; mkdir -p "$RUNS" "$MODELS"
: >"$LOG"
say "sat2map_gpu: presets ${P_ALL[*]}; device $DEVICE; budget ${BUDGET_S}s; smoke $SMOKE; pack $PACK; python $PY"
[ -f "$PACK/PACK.json" ] || { say "error: no $PACK/PACK.json (build it with scripts/sat2map_pack.py and carry it)"; exit 2; }
TILES=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['tiles'])" "$PACK/PACK.json")
SPE=$(( (TILES + BATCH - 1) / BATCH ))
CAL_STEPS=$(( CAL_EPOCHS * SPE ))
LOG_EVERY=${LOG_EVERY:-$([ "$SPE" -ge 40 ] && echo 10 || echo 2)}
say "pack: $TILES tiles at $LOAD px; batch $BATCH, $SPE steps per epoch; calibration $CAL_STEPS steps"

"$PY" - "$DEVICE" >"$RUNS/env.json" 2>>"$LOG" <<'EOF'
import json, platform, sys, torch
from cutcore.hardware import resolve_precision
dev = torch.device(sys.argv[1])
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "precision_auto": list(resolve_precision("auto", dev))}
if dev.type == "cuda":
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, memory_gib=round(p.total_memory / 2**30, 1), capability=list(torch.cuda.get_device_capability()))
print(json.dumps(info))
EOF
say "env: $(cat "$RUNS/env.json")"
# The device tool may lend an H100 or an H200: the cards name the GPU this call ran on.
[ -n "$HARDWARE" ] || HARDWARE=$("$PY" -c "import json, sys; e = json.load(open(sys.argv[1])); n = int(sys.argv[2])
print(f\"one {e['gpu']} shared by {n} concurrent runs\" if 'gpu' in e else 'CPU (smoke test)')" "$RUNS/env.json" "${#P_ALL[@]}")
say "model cards: trained on $HARDWARE"

declare -A PID RC
# wait_for DEADLINE presets...: wait for the runs; stop (TERM, then KILL) any still going at DEADLINE.
wait_for() {
  local deadline=$1; shift
  local p
  while :; do
    local alive=0
    for p in "$@"; do kill -0 "${PID[$p]}" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
      for p in "$@"; do
        if kill -0 "${PID[$p]}" 2>/dev/null; then say "$p: still running at the deadline: stopped"; kill -TERM "${PID[$p]}"; fi
      done
      sleep 5
      for p in "$@"; do kill -0 "${PID[$p]}" 2>/dev/null && kill -KILL "${PID[$p]}"; done
      break
    fi
    sleep 2
  done
  for p in "$@"; do wait "${PID[$p]}"; RC[$p]=$?; done
}

# --- phase 1: the first epoch of every run at once, which measures the shared device's step times ---------
for p in "${P_ALL[@]}"; do
  idt=(); [ "$p" != cyclegan ] && idt=(--lambda-l1-idt "$IDT")
  OMP_NUM_THREADS=$THREADS "$PY" -m cutcore train --preset "$p" --data "$PACK" --out "$RUNS/$p" \
    --load-size "$LOAD" --crop-size "$CROP" --batch-size "$BATCH" --ngf "$NGF" --n-blocks "$NBLOCKS" --lr "$LR" \
    "${idt[@]}" --whole-images-when-decaying off --exclude weights/sat2map_val.txt \
    --epochs 1000 --epochs-decay 1000 --max-steps "$CAL_STEPS" --log-every "$LOG_EVERY" \
    --save-every 100000000 --sample-every 100000000 --num-workers 0 --device "$DEVICE" \
    >"$RUNS/$p.calibrate.log" 2>&1 &
  PID[$p]=$!
done
wait_for $(( START + CAL_MAX_S )) "${P_ALL[@]}"
OK=()
for p in "${P_ALL[@]}"; do
  if [ "${RC[$p]}" = 0 ] && [ -d "$RUNS/$p/checkpoints" ]; then OK+=("$p")
  else say "$p: calibration failed (rc ${RC[$p]}):"; logtail "$RUNS/$p.calibrate.log" 15; fi
done
say "calibration done: ${OK[*]:-none}"

pack_logs() {
  "$PY" scripts/sat2map_session.py summary --runs "$RUNS" --models "$MODELS" --json "$RUNS/summary.json" 2>&1 | tee -a "$LOG"
  (cd "$RUNS" && tar -czf "$OUT/sat2map_logs.tar.gz" ./*.json ./*.log ./*.err ./*/log.jsonl ./*/metrics.jsonl ./*/config.json \
     $(for d in */samples; do [ -d "$d" ] && ls "$d"/*.png 2>/dev/null | tail -n 1; done) 2>/dev/null)
}
if [ ${#OK[@]} = 0 ]; then say "error: no run got through calibration"; pack_logs; exit 1; fi

# --- phase 2: the same number of epochs for all, fitted to the time left --------------------------------
TRAIN_END=$(( START + BUDGET_S - EXPORT_RESERVE_S ))
[ -d "$PACK/heldout/testA" ] || { [ "$EVALS" -gt 0 ] && say "no held-out curve: $PACK has no heldout/ (rebuild it)"; EVALS=0; }
SECONDS_LEFT=$(( TRAIN_END - $(date +%s) - RESTART_S - EVALS * EVAL_S ))
OKCSV=$(IFS=,; echo "${OK[*]}")
PLAN=$("$PY" scripts/sat2map_session.py calibrate --runs "$RUNS" --presets "$OKCSV" --seconds "$SECONDS_LEFT" \
  --skip $(( CAL_STEPS / 4 )) --batch "$BATCH" ${EPOCHS:+--epochs "$EPOCHS"} --json "$RUNS/calibration.json" \
  2>"$RUNS/calibration.err")
say "plan (preset epochs epochs_decay max_steps), $SECONDS_LEFT s left for phase 2: $(cat "$RUNS/calibration.err")"
echo "$PLAN" | tee -a "$LOG"
[ -n "$PLAN" ] || { say "error: no plan"; pack_logs; exit 1; }
while read -r p e1 e2 ms; do
  [ -z "$p" ] && continue
  save=$(( ms / 10 > SPE ? ms / 10 : SPE )); sample=$(( ms / 4 > SPE ? ms / 4 : SPE ))
  # The held-out curve: every pair of the pack's heldout/ (the originals), EVALS times and at the end.
  ev=(); [ "$EVALS" -gt 0 ] && ev=(--eval-data "$PACK/heldout" --eval-every $(( ms / EVALS > 1 ? ms / EVALS : 1 ))
    --eval-metrics accuracy,rmse)
  OMP_NUM_THREADS=$THREADS "$PY" -m cutcore train --data "$PACK" --out "$RUNS/$p" --resume \
    --epochs "$e1" --epochs-decay "$e2" --max-steps "$ms" --log-every "$LOG_EVERY" \
    --save-every "$save" --sample-every "$sample" --num-workers 0 --device "$DEVICE" ${ev[@]+"${ev[@]}"} \
    >"$RUNS/$p.train.log" 2>&1 &
  PID[$p]=$!
done <<<"$PLAN"
wait_for "$TRAIN_END" "${OK[@]}"
for p in "${OK[@]}"; do
  case "${RC[$p]}" in
    0) ;;
    143|137) say "$p: stopped at the deadline; exported from its newest checkpoint" ;;
    *) say "$p: training failed (rc ${RC[$p]}); exported from its newest checkpoint if any:"
       logtail "$RUNS/$p.train.log" 12 ;;
  esac
done
say "training done"

# --- phase 3: export (fp16) with the inference scale of the source tiles the pack was made from, card ---
SOURCE_SIDE=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["source_side"])' "$PACK/PACK.json")
for p in "${OK[@]}"; do
  "$PY" -m cutcore export "$RUNS/$p" "$MODELS/$p" --hardware "$HARDWARE" --source-side "$SOURCE_SIDE" \
    >"$RUNS/$p.export.log" 2>&1 &
  PID[$p]=$!
done
wait_for $(( START + BUDGET_S - 10 )) "${OK[@]}"
EXPORTED=()
for p in "${OK[@]}"; do
  if [ "${RC[$p]}" = 0 ] && [ -f "$MODELS/$p/config.json" ]; then EXPORTED+=("$p")
  else say "$p: export failed (rc ${RC[$p]}):"; logtail "$RUNS/$p.export.log" 12; fi
done

# --- phase 4: hand back ----------------------------------------------------------------------------------
for p in "${EXPORTED[@]}"; do
  tar -C "$MODELS" -cf "$OUT/sat2map_$p.tar" "$p"
  size=$(stat -c %s "$OUT/sat2map_$p.tar")
  if [ "$size" -gt $((16 * 1024 * 1024)) ]; then  # over what comes back: keep the model, drop the pictures
    say "$p: tar is $size bytes, over 16 MiB: without its PNGs"
    tar -C "$MODELS" -cf "$OUT/sat2map_$p.tar" --exclude='*.png' "$p"
  fi
done
pack_logs
say "done after $(( $(date +%s) - START )) s; files: $(cd "$OUT" && ls -l | awk 'NR>1 {printf "%s (%d KiB) ", $9, $5/1024}')"
[ ${#EXPORTED[@]} = ${#P_ALL[@]} ]
