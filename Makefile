# nncodec: `make demo` and `make test` work on a fresh machine (they create .venv first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export OMP_WAIT_POLICY := PASSIVE

.PHONY: venv test lint demo bench train-text train-text-v2 train-text-v3 train-image-v3 train-image-v4 train-image-v5 clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: plain `torch` would pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	# compat: the checkout on sys.path by a .pth line (the default import hook costs every start ~20 ms)
	$(BIN)/pip install -q -e '.[train,dev,bench,dask]' --config-settings editable_mode=compat
	touch $@

lint: venv
	$(BIN)/ruff check nncodec tests scripts

test: venv lint
	$(BIN)/python -m pytest -q --durations=12

demo: venv
	$(BIN)/python scripts/demo.py testdata

bench: venv
	# byte-compiled as pip leaves an installed package (where PYTHONDONTWRITEBYTECODE is set, as on
	# the dev machines, every run would compile the modules again: ~45 ms of each start-up)
	$(BIN)/python -m compileall -q nncodec
	$(BIN)/python scripts/bench.py
	$(BIN)/python scripts/bench_image.py
	$(BIN)/python scripts/bench_image_sources.py
	$(BIN)/python scripts/bench_log.py
	$(BIN)/python scripts/bench_pc.py
	$(BIN)/python scripts/bench_tools.py
	$(BIN)/python scripts/bench_levels.py
	$(BIN)/python scripts/bench_png.py
	$(BIN)/python scripts/bench_text.py

# Retrain the text model (see models/text-v2.json): text-v1 from scratch on the narrow split (about
# 90 minutes on 2 CPU cores), then text-v2 continues from it on the broad split (Gutenberg minus
# held-out authors, man pages, ...; about 2 hours on one core)
train-text: venv
	$(BIN)/python -m nncodec.training.text.tokenizer --vocab 4096 --out models/text-bpe4k.tokenizer.json
	$(BIN)/python -m nncodec.training.text.train --tokenizer models/text-bpe4k.tokenizer.json \
		--out-dir checkpoints/text --steps 5000 --eval-every 500
	$(BIN)/python -m nncodec.training.text.export --weights checkpoints/text/model.safetensors \
		--card checkpoints/text/card.json --tokenizer models/text-bpe4k.tokenizer.json \
		--model-id text-v1 --out-dir models
	$(MAKE) train-text-v2
	$(MAKE) train-text-v3

# the next-pixel model image-v3 (~18 min on one core): broad photo sets, four sources held out
train-image-v3: venv
	$(BIN)/python -m nncodec.training.image.train --out-dir checkpoints/image-v3 --model-dir models \
		--model-id image-v3 --features v2 --hidden 192 --mcm-share 1.0 --steps 24000 --data broad

# the shipped next-pixel model image-v5 (~55 min on one core): image-v4 with mirrored copies, 48,000 steps
train-image-v5: venv
	$(BIN)/python -m nncodec.training.image.train --out-dir checkpoints/image-v5 --model-dir models \
		--model-id image-v5 --features v2 --hidden 256 --mcm-share 1.0 --steps 48000 --data broad --augment

# image-v4 (~30 min on one core): image-v3's data, 256 wide, 32,000 steps
train-image-v4: venv
	$(BIN)/python -m nncodec.training.image.train --out-dir checkpoints/image-v4 --model-dir models \
		--model-id image-v4 --features v2 --hidden 256 --mcm-share 1.0 --steps 32000 --data broad

train-text-v2: venv
	$(BIN)/python -m nncodec.training.text.train --tokenizer models/text-bpe4k.tokenizer.json \
		--out-dir checkpoints/text-v2 --broad --init-from-exact models/text-v1.safetensors \
		--steps 3000 --lr 6e-4 --warmup 50 --eval-every 250 --threads 2
	$(BIN)/python -m nncodec.training.text.export --weights checkpoints/text-v2/model.safetensors \
		--card checkpoints/text-v2/card.json --tokenizer models/text-bpe4k.tokenizer.json \
		--model-id text-v2 --out-dir models --broad

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

# text-v3 (about 35 minutes on 2 cores): text-v2 continued on the broad split plus source code and
# documentation installed on the machine (the code split of nncodec/training/text/data.py)
train-text-v3: venv
	$(BIN)/python -m nncodec.training.text.train --tokenizer models/text-bpe4k.tokenizer.json \
		--out-dir checkpoints/text-v3 --broad --code --init-from-exact models/text-v2.safetensors \
		--steps 1500 --lr 3e-4 --warmup 50 --eval-every 250 --threads 2
	$(BIN)/python -m nncodec.training.text.export --weights checkpoints/text-v3/model.safetensors \
		--card checkpoints/text-v3/card.json --tokenizer models/text-bpe4k.tokenizer.json \
		--model-id text-v3 --out-dir models --broad --code
