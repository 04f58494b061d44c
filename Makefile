# The README's first two commands: `make demo` and `make test`. Both set everything up on a fresh
# machine in ./.venv (torch is pinned: `pip install torch==2.13.0` takes the local CPU build).
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= train,export,eval,test,serve

.PHONY: setup demo test lint typecheck pytest clean default-model

# `pconv serve --setup`: the Triton server binary for `pconv serve` and its tests, from PyPI, unpacked
# without its dependencies into $(VENV)/triton (nvidia-pytriton pins numpy<2; pconv/serving/environment.py).
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=77"
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	$(PY) -m pip install -q --no-deps "tensorrt-stubs==10.13.0.35.1"
	$(VENV)/bin/pconv serve --setup
	touch $@

demo: setup
	$(VENV)/bin/pconv demo --out demo_out

# The shipped default model (pconv/models/default.*): trained on scikit-image's data with the fixed
# recipe on a 2-core CPU (about 80 minutes), then INT8-aware fine-tuned (about 9 minutes: the INT8
# export's rounding simulated, all BatchNorm frozen; FP32 quality also rose in every hole-ratio bin,
# quality_$(DEFAULT_INT8_RUN).json), scored on the held-out set against OpenCV, then packaged. The
# paper's fine-tuning with encoder BatchNorm frozen (here with --tv-weight 1) measured no gain
# (quality_default_ft.json).
DEFAULT_RUN ?= default
DEFAULT_RECIPE = --size 128 --depth 6 --width 0.25 --batch 8 --steps 12000 --lr 5e-4 --schedule cosine \
	--augment full --hole-ratio 0.01,0.6 --threads 1 --checkpoint-every 500 --sample-every 1000 --log-every 50
DEFAULT_INT8_RUN ?= default_int8_aware
DEFAULT_INT8_RECIPE = --finetune runs/quality/$(DEFAULT_RUN)/checkpoint.safetensors --int8-aware --size 128 \
	--batch 8 --steps 1500 --lr 5e-5 --schedule cosine --augment full --hole-ratio 0.01,0.6 --threads 1 \
	--checkpoint-every 500 --sample-every 500 --log-every 50
default-model: setup
	$(PY) benchmarks/quality.py --name $(DEFAULT_RUN) --per-bin 6 -- $(DEFAULT_RECIPE)
	$(PY) benchmarks/quality.py --name $(DEFAULT_INT8_RUN) --per-bin 6 -- $(DEFAULT_INT8_RECIPE)
	$(PY) scripts/ship_default_model.py runs/quality/$(DEFAULT_INT8_RUN) --stage1 runs/quality/$(DEFAULT_RUN) \
		--quality benchmarks/results/quality_$(DEFAULT_INT8_RUN).json

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# TensorRT can't be installed here: type-check its callers against NVIDIA's stubs (see scripts/trt_stubs.py).
typecheck: setup
	$(PY) scripts/trt_stubs.py build/trt-stubs
	MYPYPATH=build/trt-stubs $(VENV)/bin/mypy pconv training export engine plugins runtime eval apps scripts benchmarks
	# a second run: benchmarks/serving.py and the serving/ stage would both be module `serving` in one run
	MYPYPATH=build/trt-stubs $(VENV)/bin/mypy serving

pytest: setup
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) build *.egg-info demo_out
