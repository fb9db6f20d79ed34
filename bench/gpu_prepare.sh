#!/usr/bin/env bash
# Run HERE, before bench/gpu_check.sh runs on a lent GPU machine (which reaches no network).
# Fills .gpu/ (git-ignored; carry it): wheels of the packages that machine's image lacks, and a
# compact copy of a processed dataset (bench/pack_data.py). Usage:
#   bash bench/gpu_prepare.sh [PROCESSED_DATA]   (default bench_out/processed, from `make benchmark`)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-bench_out/processed}
python=${PYTHON:-.venv/bin/python}
mkdir -p .gpu/whl
# The H200 image has torch, numpy, scipy, scikit-image, matplotlib, tensorboard, safetensors, typer,
# pyyaml, tqdm and threadpoolctl; these are missing there (Python 3.12, x86-64).
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .gpu/whl \
  trimesh==5.2.0 embreex==4.4.0.post1 libigl==2.6.3 rtree==1.4.1
"$python" bench/pack_data.py --data "$data" --out .gpu/data --identities 3
du -sh .gpu
