# Two commands on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test clean

# torch first, pinned to the machine's local CPU wheel: an unpinned torch pulls a
# multi-GB CUDA build. pyproject's torch>=2.2 is then already satisfied.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# a run folder holds one run: the demo replaces its own
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/mpdesign pipeline --out runs/demo

# One thread per process: the suite's networks are tiny, and two-thread torch on a 2-core box
# whose other core is busy (a solver, a notebook kernel, a DDP peer) spins; measured 10x slower.
# Two pytest workers (pytest-xdist), one per core; no test's verdict depends on the clock.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --nbmake tests notebooks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
