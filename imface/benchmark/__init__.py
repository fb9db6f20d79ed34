"""``imface benchmark``: the paper's comparisons (Tables 1-2, Figs. 4-5) on any processed dataset."""
from imface.benchmark.run import choose_test_scans, run_benchmark
from imface.config.benchmark import BENCHMARK_PRESETS, BenchmarkConfig, benchmark_preset

__all__ = ["BENCHMARK_PRESETS", "BenchmarkConfig", "benchmark_preset", "choose_test_scans", "run_benchmark"]
