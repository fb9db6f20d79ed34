# Two commands do all the setup on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.imface-installed
DEMO_OUT ?= demo_out
BENCH_OUT ?= bench_out
BENCH_PRESET ?= cpu
MODEL_OUT ?= model_out
PYTEST_ARGS ?=

.PHONY: setup demo test test-slow bench benchmark model clean-demo browser test-browser

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

# The shipped model (imface/weights/ict, MODEL_CARD.md there) rebuilt from scratch: ICT-FaceKit data (166 people x 10
# expressions, seed 0; 12 people held out), preprocess, the cpu preset for the shipped model's steps, fp16 export,
# fits of the held-out people, and a check that their Chamfer is within noise of the card's.
MODEL_EXPRESSIONS = neutral,smile,mouth_stretch,anger,jaw_left,lip_puckerer,cheek_blowing,eye_closed,brow_raiser,grin
MODEL_STEPS ?= $(shell $(PYTHON) -c "import json; print(json.load(open('imface/weights/ict/card.json'))['training']['steps'])")
model: setup
	$(BIN)/imface --threads 2 data ict --out $(MODEL_OUT)/raw --identities 166 --expressions $(MODEL_EXPRESSIONS) \
		--seed 0 --workers 2 --no-progress
	$(BIN)/imface --threads 2 preprocess --in $(MODEL_OUT)/raw --out $(MODEL_OUT)/processed --workers 2 \
		--surface-samples 100000 --space-samples 15000 --test-identities 12 --test-expressions none --no-progress
	$(BIN)/imface --threads 2 train --data $(MODEL_OUT)/processed --out $(MODEL_OUT)/run --preset cpu --seed 0 \
		--max-steps $(MODEL_STEPS) --max-minutes 0 --no-progress
	$(BIN)/imface export --model $(MODEL_OUT)/run --out $(MODEL_OUT)/model --dtype fp16
	cp $(MODEL_OUT)/raw/NOTICE.txt imface/weights/ict/MODEL_CARD.md $(MODEL_OUT)/model/
	$(BIN)/imface --threads 2 fit --model $(MODEL_OUT)/model --data $(MODEL_OUT)/processed --split test \
		--out $(MODEL_OUT)/fits --no-progress
	$(BIN)/imface eval --fits $(MODEL_OUT)/fits --data $(MODEL_OUT)/processed
	$(BIN)/python -m bench.model_check --eval $(MODEL_OUT)/fits/eval/summary.json

test: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

# Debian's chromium for the viewer's real-browser test (tests/viewer/test_browser.py) and its screenshots
# (bench/viewer.py --screenshot); driven over the DevTools protocol, so no driver and no downloaded browser.
# Needs root (apt); skipped when chromium is already there.
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

test-browser: setup browser
	$(BIN)/python -m pytest -q -m slow tests/viewer/test_browser.py $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench.preprocess

clean-demo:
	rm -rf $(DEMO_OUT)
