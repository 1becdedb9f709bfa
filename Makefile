# PertDiT: the two commands a new user needs are `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PERTDIT_DATA ?= $(abspath ../shared/data)

.PHONY: install demo test test-full bench compare reproduce-figure2 reproduce-figure3 reproduce-figureS3 reproduce-organ clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: the pinned CPU wheel lies on the build machines' disks; a CUDA box may pre-install its own
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pertdit demo

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-full: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pertdit.bench --out BENCHMARKS.md

# every model on the collection benchmark, same split and CPU budget, 3 seeds (docs/results.md);
# resumable; e.g. make compare COMPARE_ARGS="--models mean_shift prnet --seeds 0"
compare: $(STAMP)
	$(BIN)/pertdit compare $(COMPARE_ARGS)

reproduce-figure2: $(STAMP)
	$(BIN)/python -m experiments.reproduce figure2

# Figure 3d (and 3b/3c's CatCrossDiT) are Figure 2a's runs at small scale: reused when reproduce-figure2 ran first
FIGURE2A_SWEEP := outputs/reproduce/figure2-small/sweeps/figure2a
reproduce-figure3: $(STAMP)
	$(BIN)/python -m experiments.reproduce figure3 $(if $(wildcard $(FIGURE2A_SWEEP)),--reuse $(FIGURE2A_SWEEP))

reproduce-figureS3: $(STAMP)
	$(BIN)/python -m experiments.reproduce figureS3

reproduce-organ: $(STAMP)
	$(BIN)/python -m experiments.reproduce organ

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
