#!/usr/bin/env bash
# Rehearse the GPU queue (GPU_NOTES.md) on this CPU under the GPU image's software before spending a
# window on it: Python 3.12, torch 2.11 / torchvision 0.26, numpy 2.x, pytest, and no gradio, pytorch-fid
# or huggingface_hub. Each item runs its script's own smoke mode (2b: the bench's reference rows, tiny);
# all must end rc 0.
#
#   bash scripts/gpu_rehearse.sh            # ~3 min once the environment exists (first time: ~1.1 GB of wheels)
#
# The environment (REHEARSE_VENV, default /tmp/gpu312; logs go to REHEARSE_OUT, default /tmp/gpu_rehearsal)
# borrows the CUDA libraries of this machine's own torch install so that torch 2.11's CUDA build imports;
# CUDA itself is not available here.
set -u
cd "$(dirname "$0")/.."
VENV=${REHEARSE_VENV:-/tmp/gpu312}
OUT=${REHEARSE_OUT:-/tmp/gpu_rehearsal}  # deleted and refilled on each run
PY312=${PY312:-}
for p in python3.12 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12; do  # a pyenv shim may not run
  [ -z "$PY312" ] && "$p" -c "" 2>/dev/null && PY312=$p
done

if ! "$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.11')" 2>/dev/null; then
  echo "building $VENV (log: $VENV.build.log)"
  exec 3>&1 >"$VENV.build.log" 2>&1  # pip's warnings about the CUDA packages it was told not to fetch
  trap 'echo "building $VENV failed: $VENV.build.log" >&3' EXIT
  "${PY312:?no Python 3.12 found: set PY312}" -m venv "$VENV" || exit 1
  wheels=$(mktemp -d)
  # PIP_CONFIG_FILE=/dev/null: this machine's pip constraints and local indexes are for the project's own pins
  PIP_CONFIG_FILE=/dev/null "$VENV/bin/pip" download -q --no-deps torch==2.11.0 torchvision==0.26.0 -d "$wheels" || exit 1
  "$VENV/bin/pip" install -q --no-deps "$wheels"/*.whl || exit 1
  "$VENV/bin/pip" install -q "numpy>=2" pillow safetensors tqdm matplotlib scipy pytest \
    typing_extensions sympy filelock jinja2 networkx fsspec || exit 1
  rm -rf "$wheels"
  nvidia=$(python3 -c "import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))") || exit 1
  mkdir -p "$VENV/cuda-libs" && ln -sfn "$nvidia/nvidia" "$VENV/cuda-libs/nvidia"
  echo "$VENV/cuda-libs" > "$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')/cuda-libs.pth"
  trap - EXIT
  exec >&3 2>&1
fi
export PATH="$VENV/bin:$PATH"
python3 -c "import sys, torch; print('rehearsing under Python', sys.version.split()[0], 'torch', torch.__version__)"
if python3 -c "import gradio" 2>/dev/null; then echo "gradio is importable in $VENV: not the GPU image" >&2; exit 1; fi

rm -rf "$OUT" runs/sat2map_rehearsal && mkdir -p "$OUT"
[ -d packs/sat2map_smoke/heldout ] || python3 scripts/sat2map_pack.py --out packs/sat2map_smoke --size 64 --limit 24 \
  >"$OUT/pack.log" 2>&1 || { echo "pack failed: $OUT/pack.log" >&2; exit 1; }
failed=0
item() {  # item NAME command...
  local name=$1 t0; shift; t0=$(date +%s)
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: rc=$rc after $(( $(date +%s) - t0 )) s (log: $OUT/$name.log)"
  [ $rc = 0 ] || failed=1
}
item 1_sat2map env OUT="$OUT/1" SMOKE=1 DEVICE=cpu PACK=packs/sat2map_smoke LOAD=64 CROP=32 BATCH=2 NGF=8 THREADS=1 \
  RUNS=runs/sat2map_rehearsal bash scripts/sat2map_gpu.sh
item 2_gpu_session env OUT="$OUT/2" SMOKE=1 BUDGET_S=400 bash scripts/gpu_session.sh
grep -q "rc=[1-9]" "$OUT/2/session.log" && { echo "2_gpu_session: a stage failed, see $OUT/2/session.log"; failed=1; }
# The smoke mode measures FastCUT alone; the GPU call measures every preset beside the reference, whose
# models have their own quirks (its CycleGAN once failed every row): each reference row once, tiny, here
# (~1 min; not SinCUT's, whose paper configuration takes ~20 s a step on this CPU).
if [ -d tmp/reference/models ]; then
  item 2b_reference_rows python3 -m cutcore.bench --preset cut,fastcut,cyclegan --size 32 --infer-sizes 32 \
    --iters 1 --device cpu --reference tmp/reference
else
  echo "2b_reference_rows: skipped (tmp/reference is absent: see scripts/gpu_session.sh)"
fi
item 3_train_path python3 scripts/gpu_train_path.py --smoke --device cpu --out "$OUT/3_train_path.json"
if [ -d ../shared/data/single_image ]; then
  item 4_sincut python3 scripts/sincut_gpu.py --data ../shared/data/single_image --out "$OUT/4" --smoke
else
  echo "4_sincut: skipped (../shared/data/single_image is absent)"
fi
exit $failed
