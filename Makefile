# The two README commands. Each creates .venv on first use and installs the tested versions.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: demo test test-lane-1 test-lane-2 test-alone train-demo bench bench-quick lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip byte-compiles what it installs (70 s of the install here), and that must stay: where
# PYTHONDONTWRITEBYTECODE=1 is set, as on these machines, nothing compiled later is kept, and every
# process would compile TensorFlow, PyTorch and JAX from source again (measured: importing the
# three took 17.4 s instead of 7.9; with --no-compile `make test` took 50.3 min, without it 48.7).
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nnzoo parity --all --keras-backends all
	$(BIN)/nnzoo report --out out/report

# The whole suite with Keras on TensorFlow, then the tests marked `keras` (the parity contract:
# counts, shapes, numerics, transfer, files, padded sequences, training, exports) on Keras's
# PyTorch and JAX backends, every registered model on all three: the heavy variants (`slow`,
# `conftest.heavy`) in passes of their own, ViT-L and ViT-H (`alone`) on TensorFlow only but
# ViT-L/16's gradient check (their numerics peak at 15 GB; `make demo` checks their outputs on
# all three; see ALONE_TF), and on JAX EfficientNet
# B2-B7 for counts and shapes only (XLA's dense depthwise lowering: `conftest.JAX_DENSE_DEPTHWISE`).
# Each pass is one pytest process that keeps about one core busy (measured: 87-116% CPU on a
# 2-core machine), so two lanes run side by side, each lane's output printed whole when it ends:
# TensorFlow, TensorFlow's heavy variants, then ViT-L/16's gradient check on PyTorch; JAX, then
# PyTorch's heavy variants and PyTorch's pass (balanced from the passes' times measured on a slow
# host, 2026-12-06: 32.4 and 32.3 min of work, where the old split's lanes took 34.1 and 31.9).
# The heavy passes meet as before: TensorFlow's (6.0 GB at its peak) beside PyTorch's (5.6 GB);
# ViT-L/16's check (5.8 GB) beside PyTorch's pass. Last, alone, the checks whose peak is the machine's:
# `alone` (ViT-L and ViT-H), and JAX's heavy variants in two processes, the second with ViT-L/16's
# gradient check (HEAVY_ALONE_JAX: ConvNeXt-B's gradient check alone took 13.0 GB
# there, XLA's dense depthwise lowering again; the two `-k` expressions are each other's
# complement, so every heavy check runs once per backend whatever the registry holds).
# The largest heavy gradient checks on TensorFlow and PyTorch (ResNeXt-101, Wide ResNet-101)
# run in the lanes: since a check holds one build at a time they peak at 6.0 and 5.6 GB
# (one thread each, measured 2026-12-05). Measured passes under the former split (clean clone,
# 2-core AMD EPYC, 2026-12-05: 40.0 min in all, 13.5 GB peak): lane 1 TensorFlow 16.6 min, PyTorch 3.3, PyTorch's
# heavy variants 5.1; lane 2 JAX 16.8, TensorFlow's heavy variants 7.3, ViT-L/16 on PyTorch 1.0;
# alone: `alone` 3.6 (ViT-L/32's gradients included), JAX's heavy variants 5.7, its largest
# gradient checks and ViT-L/16's 3.2. With ViT-L/16's gradients on TensorFlow only it took 37.5
# min (CI: 37.5); with ViT-L/32's and ViT-H/14's as well (see ALONE_TF), 46.5 min
# here (CI: 46.2).
# In the lanes each framework computes on one thread: two processes each spreading work over
# both cores made them wait on each other (measured, two numeric-parity passes side by side:
# Keras/PyTorch's 4.7 min and Keras/JAX's 4.8 min with two threads each, 2.6 and 3.5 min with
# one). The `alone` passes keep the frameworks' defaults.
LANE_THREADS := NNZOO_TEST_THREADS=1 OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 \
	XLA_FLAGS="--xla_cpu_multi_thread_eigen=false $(XLA_FLAGS)"

HEAVY := keras and slow and not alone
# On JAX the largest heavy gradient checks, ConvNeXt-B's included, run in a process of their own:
# after the other heavy checks in one process the machine peaked at 16.3 GB (clean clone, 2-core
# AMD EPYC, 2026-12-04).
HEAVY_ALONE_JAX := test_gradient_parity and (resnext101 or wide_resnet101 or convnext_base)
# ViT-L and ViT-H's float64 gradient checks (`alone`: 304-632M parameters, 5.1-12.7 GB, 1-2.7
# min each): `make test` runs ViT-L/16's on all three backends (ALONE_EVERY_BACKEND: on
# PyTorch at the end of lane 1, beside PyTorch's pass, 5.8 GB; on JAX with its largest
# heavy gradient checks) and ViT-L/32's on TensorFlow (ALONE_TF); for the test budget not
# ViT-L/32's on JAX and PyTorch (with them, 42.1 min here on 2026-12-05) nor ViT-H/14's (with it
# and ViT-L/32's, on TensorFlow only, 46.5 min here on a slow day, and CI 46.2). ViT-L/32 has
# ViT-L/16's encoder (only the patch-embedding kernel differs, a layer ViT-B/32 checks) and
# ViT-H/14 the same layer types, wider and deeper. Run them all with `KERAS_BACKEND=... pytest
# -m alone -k test_gradient_parity`: ViT-L/32 and ViT-H/14 passed by hand on all three backends.
ALONE_EVERY_BACKEND := test_gradient_parity and vit_l_16
ALONE_TF := test_gradient_parity and (vit_l_16 or vit_l_32)
# TensorFlow's oneDNN CPU allocator keeps what a dropped build held (measured: 5.5 GB after
# ViT-L/16's gradient check); with this it goes back, so each check starts from empty (and
# ResNeXt-101's and Wide ResNet-101's gradient checks peak at 6.0 GB, not 7.9, no slower).
TF_RETURNS_MEMORY := TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1

test: $(STAMP)
	$(LANE_THREADS) $(MAKE) --no-print-directory --jobs=2 --output-sync=target test-lane-1 test-lane-2
	$(MAKE) --no-print-directory test-alone

test-lane-1: $(STAMP)
	@echo "== Keras on TensorFlow: every test but the heavy variants =="
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -m "not slow"
	@echo "== Keras on TensorFlow: the heavy variants (slow) =="
	KERAS_BACKEND=tensorflow $(TF_RETURNS_MEMORY) $(BIN)/python -m pytest -m "slow and not alone"
	@echo "== Keras on PyTorch: ViT-L/16's gradient check =="
	KERAS_BACKEND=torch $(BIN)/python -m pytest -m alone -k "$(ALONE_EVERY_BACKEND)"

test-lane-2: $(STAMP)
	@echo "== Keras on JAX: the tests marked keras =="
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m "keras and not slow"
	@echo "== Keras on PyTorch: the heavy variants (slow) =="
	KERAS_BACKEND=torch $(BIN)/python -m pytest -m "$(HEAVY)"
	@echo "== Keras on PyTorch: the tests marked keras =="
	KERAS_BACKEND=torch $(BIN)/python -m pytest -m "keras and not slow"

test-alone: $(STAMP)
	@echo "== Keras on TensorFlow: the heavy variants that need the machine to themselves =="
	KERAS_BACKEND=tensorflow $(TF_RETURNS_MEMORY) $(BIN)/python -m pytest -m alone \
		-k "not test_gradient_parity or ($(ALONE_TF))"
	@echo "== Keras on JAX: the heavy variants (slow), then the largest gradient checks =="
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m "$(HEAVY)" -k "not ($(HEAVY_ALONE_JAX))"
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m "keras and slow" \
		-k "($(HEAVY_ALONE_JAX)) or ($(ALONE_EVERY_BACKEND))"

# One zoo CNN trained on scikit-learn's bundled digits in PyTorch and in Keras from the same
# weights (float64: the curves agree within the parity bound): both test accuracies, and the two
# loss curves in out/digits.png.
train-demo: $(STAMP)
	mkdir -p out
	$(BIN)/python examples/digits.py --dtype float64 --out out/digits.png

# The benchmarks also need the references and matplotlib (the bench extra); `make test` does not.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e ".[dev,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run

bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run --quick

lint: $(STAMP)
	$(BIN)/python -m ruff check nnzoo tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info
