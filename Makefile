# tracec: two commands do all set-up on a fresh machine (see README.md).
#   make demo   create .venv, install both packages, compile/verify/route the example traces
#   make test   the test suite (installs the same environment first)
#   make bench  benchmarks against tracer-llm (writes docs/benchmarks.md)
#   make soak   the serve load test alone, with a 5-minute soak sampling the server's RSS

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    := out
SCALE_ROWS ?= 10000,100000

.PHONY: demo test bench bench-quick soak schemas clean

$(STAMP): pyproject.toml runtime/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The wheels' SPDX licence metadata needs setuptools >= 77 (the wheel tests build offline).
	$(BIN)/pip install --quiet --disable-pip-version-check 'setuptools>=77'
	# No torch: the default embedder is int8 ONNX.  For the optional sentence-transformers
	# backend install CPU torch==2.13.0 first, then '.[embed-st]'.
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e 'runtime[serve]' -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh $(OUT)

test: $(STAMP)
	bash tests/setup_browser.sh || echo "chromium unavailable: browser tests will be skipped" >&2
	bash tests/setup_toolchains.sh
	$(BIN)/python -m pytest -q --durations=15 -m "not slow" tests
	$(BIN)/python -m pytest -q --durations=15 -m slow tests

bench: $(STAMP)
	# The embedder benchmark compares with the fp32 sentence-transformers path: CPU torch first.
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt '.[embed-st]'
	$(BIN)/python -m benchmarks.run --data ../shared/data
	# Data-size sweep (TRACER at 10k only: its 1k-5k fits take 450 s to > 25 min each here,
	# docs/certify-more.md; --tracer-sizes 1000,2000,5000 --tracer-timeout-s 1500 runs them) and the
	# compile scaling run; 1M rows take ~5 min and 8 GiB on this machine: make bench SCALE_ROWS=10000,100000,1000000
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.size_sweep --data ../shared/data --tracer-sizes 10000
	$(BIN)/python -m benchmarks.compile_scale --rows $(SCALE_ROWS)
	# cross-fitting against the split (docs/certify-more.md#cross-fitting-measured-not-shipped)
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.crossfit_sim --data ../shared/data --reps 400 --n 2000 --alphas 0.7,0.75,0.8,0.85 --out benchmarks/results/crossfit_sim.json
	# can any valid certificate reach hindsight - 3? (docs/certify-more.md#an-idealised-bound-the-target-is-out-of-reach-at-these-sizes)
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.ideal_oracle --data ../shared/data --seeds 0,1
	$(BIN)/python -m benchmarks.run --render-only
	command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null || echo "wrk unavailable: the serve load test is skipped" >&2
	$(BIN)/python -m benchmarks.product --data ../shared/data

soak: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null
	$(BIN)/python -m benchmarks.product --data ../shared/data --only serve --soak-s 300

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick --data ../shared/data

schemas: $(STAMP)
	$(BIN)/python -m tracec.schemas --write

clean:
	rm -rf $(OUT) .pytest_cache
