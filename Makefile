# Two commands do all the setup on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.imface-installed
DEMO_OUT ?= demo_out
BENCH_OUT ?= bench_out
BENCH_PRESET ?= cpu
PYTEST_ARGS ?=

.PHONY: setup demo test test-slow bench benchmark clean-demo

setup: $(STAMP)

# The venv sees system site-packages so an already-installed torch is kept, never replaced.
# torch==2.13.0 (CPU build on this machine) is installed first only when no torch imports,
# so the unpinned `torch>=2.2` requirement can never pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "torch==2.13.0"
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(BIN)/imface --threads 2 demo --out $(DEMO_OUT)

# The evaluation of README "Results" (docs/benchmark.md): 56 built-in identities x 10 expressions (6 identities and the
# jaw_left / mouth_left expressions held out: 50 x 8 = 400 training scans), then imface benchmark.
BENCH_EXPRESSIONS = neutral,smile,mouth_stretch,anger,jaw_left,grin,brow_raiser,lip_puckerer,cheek_blowing,mouth_left
benchmark: setup
	$(BIN)/imface --threads 2 data bfm --out $(BENCH_OUT)/raw --identities 56 --expressions $(BENCH_EXPRESSIONS) --workers 2
	$(BIN)/imface --threads 2 preprocess --in $(BENCH_OUT)/raw --out $(BENCH_OUT)/processed --workers 2 \
		--surface-samples 100000 --space-samples 15000 --test-identities 6 --no-progress
	$(BIN)/imface --threads 2 benchmark --data $(BENCH_OUT)/processed --out $(BENCH_OUT)/$(BENCH_PRESET) \
		--preset $(BENCH_PRESET)

test: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench.preprocess

clean-demo:
	rm -rf $(DEMO_OUT)
