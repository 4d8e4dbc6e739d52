# nncodec: `make demo` and `make test` work on a fresh machine (they create .venv first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export OMP_WAIT_POLICY := PASSIVE

.PHONY: venv test lint demo bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: plain `torch` would pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,dev]'
	touch $@

lint: venv
	$(BIN)/ruff check nncodec tests scripts

test: venv lint
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/python scripts/demo.py testdata

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
