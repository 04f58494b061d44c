# The README's first two commands: `make demo` and `make test`. Both set everything up on a fresh
# machine in ./.venv (torch is pinned: `pip install torch==2.13.0` takes the local CPU build).
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= train,export,eval,test

.PHONY: setup demo test lint typecheck pytest clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=77"
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	$(PY) -m pip install -q --no-deps "tensorrt-stubs==10.13.0.35.1"
	touch $@

demo: setup
	$(VENV)/bin/pconv demo --out demo_out

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# TensorRT can't be installed here: type-check its callers against NVIDIA's stubs (see scripts/trt_stubs.py).
typecheck: setup
	$(PY) scripts/trt_stubs.py build/trt-stubs
	MYPYPATH=build/trt-stubs $(VENV)/bin/mypy pconv training export runtime plugins scripts benchmarks

pytest: setup
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) build *.egg-info demo_out
