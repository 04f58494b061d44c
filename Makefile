# The README's first two commands: `make demo` and `make test`. Both set everything up on a fresh
# machine in ./.venv (torch is pinned: `pip install torch==2.13.0` takes the local CPU build).
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= train,export,eval,test

.PHONY: setup demo test lint typecheck pytest clean default-model default-model-stage2

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

# The shipped default model (pconv/models/default.*), trained on scikit-image's data on a 2-core CPU
# (about an hour): stage 1 from scratch with the fixed recipe; stage 2 the paper's fine-tuning (encoder
# BatchNorm frozen) with a heavier total-variation term; each stage scored on the held-out set
# against OpenCV (benchmarks/results/quality_<run>.json); then packaged.
DEFAULT_RUN ?= default
DEFAULT_RECIPE = --size 128 --depth 6 --width 0.25 --batch 8 --steps 12000 --lr 5e-4 --schedule cosine \
	--augment full --hole-ratio 0.01,0.6 --threads 1 --checkpoint-every 500 --sample-every 1000 --log-every 50
DEFAULT_FINETUNE = --finetune runs/quality/$(DEFAULT_RUN)/checkpoint.safetensors --size 128 --batch 8 \
	--steps 1500 --lr 5e-5 --schedule cosine --tv-weight 1 --augment full --hole-ratio 0.01,0.6 --threads 2 \
	--checkpoint-every 500 --sample-every 500 --log-every 50
default-model: setup
	$(PY) benchmarks/quality.py --name $(DEFAULT_RUN) --per-bin 6 -- $(DEFAULT_RECIPE)
	$(MAKE) default-model-stage2

default-model-stage2: setup
	$(PY) benchmarks/quality.py --name $(DEFAULT_RUN)_ft --per-bin 6 -- $(DEFAULT_FINETUNE)
	$(PY) scripts/ship_default_model.py runs/quality/$(DEFAULT_RUN)_ft --stage1 runs/quality/$(DEFAULT_RUN) \
		--quality benchmarks/results/quality_$(DEFAULT_RUN)_ft.json

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
