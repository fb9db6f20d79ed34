#!/usr/bin/env bash
# The GPU check (issue "ImFace that learns"): under 8 minutes on one GPU, every result in files.
#   here:   bash bench/gpu_prepare.sh            (wheels + a compact dataset into .gpu/)
#   there:  bash bench/gpu_check.sh [OUT]        (device tool: carry [".gpu"]; OUT defaults to $OUT)
#   CPU dry run: DEVICE=cpu QUICK=1 bash bench/gpu_check.sh /tmp/gpu_check
# Writes OUT/env.txt, tests.txt, train_step.txt, train.txt, curves.jsonl, loss_curves.png, summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu_check_out}}
device=${DEVICE:-cuda}
quick=${QUICK:-0}
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
if [ -d .gpu/whl ] && ! "$python" -c "import trimesh, embreex, igl, rtree" 2>/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/imface-site .gpu/whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/imface-site
fi
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUT/NAME.txt, note failures
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s): $*" | tee -a "$out/summary.txt"
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  echo "   exit $rc" | tee -a "$out/summary.txt"
  [ $rc -eq 0 ] || status=1
}
step env 60 "$python" -c "import torch, platform; print(platform.platform()); print('torch', torch.__version__); \
print('cuda', torch.cuda.is_available(), torch.version.cuda); \
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
if [ "$device" = cuda ]; then
  # every test that needs CUDA (the ones skipped on CPU), and the model/trainer tests on this machine
  step tests 150 "$python" -m pytest -q -x -p no:cacheprovider tests/ops/test_marching_cubes.py \
    tests/training/test_trainer.py -k "cuda or precision or recipe"
  step train_step 150 "$python" bench/train_step.py --device cuda --steps 3
else
  step tests 300 "$python" -m pytest -q -x -p no:cacheprovider tests/training/test_trainer.py -k "precision or recipe"
  step train_step 300 "$python" bench/train_step.py --threads 2 --points 1024 --steps 2
fi
data=${DATA:-.gpu/data}
if [ -f "$data/manifest.json" ]; then
  minutes=$([ "$quick" = 1 ] && echo 0.5 || echo 3)
  rm -rf /tmp/imface-gpu-run
  step train $((${minutes%.*} * 60 + 120)) "$python" -m imface train --data "$data" --out /tmp/imface-gpu-run \
    --preset gpu --device "$device" --max-minutes "$minutes" --no-progress
  cp /tmp/imface-gpu-run/curves.jsonl /tmp/imface-gpu-run/loss_curves.png "$out/" 2>/dev/null
  tail -n 3 "$out/curves.jsonl" >> "$out/summary.txt" 2>/dev/null
else
  echo "== train: skipped, no dataset at $data (run bench/gpu_prepare.sh here first)" | tee -a "$out/summary.txt"
fi
grep -h "train step" "$out/train_step.txt" >> "$out/summary.txt" 2>/dev/null
exit $status
