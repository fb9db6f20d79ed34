"""Lasting benchmarks (bench/README.md): scripts run from the repository root, ``python -m
bench.NAME ...`` or ``python bench/NAME.py ...``, and the GPU check (gpu_prepare.sh here,
gpu_check.sh on a lent GPU machine)."""
