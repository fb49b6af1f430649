# The two README commands. Each creates .venv on first use and installs the tested versions.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: demo test test-lane-1 test-lane-2 test-largest train-demo bench bench-quick lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# What is installed must be byte-compiled at install: where PYTHONDONTWRITEBYTECODE=1 is set, as
# on these machines, nothing compiled later is kept, and every process would compile TensorFlow,
# PyTorch and JAX from source again (measured: importing the three took 17.4 s instead of 7.9;
# `make test` 50.3 min instead of 48.7). pip compiles file by file on one core; compileall on
# every core (the same 15,060 files; the install 112 -> 81 s on 2 cores). Like pip, it goes on
# past a file it cannot compile (PyTorch ships one for Python 3.12: exit status 1, so ignored).
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
COMPILE := $(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) --no-compile -e ".[dev]"
	$(COMPILE)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nnzoo parity --all --keras-backends all
	$(BIN)/nnzoo report --out out/report

# The whole suite with Keras on TensorFlow, then the tests marked `keras` (the parity contract:
# counts, shapes, numerics, transfer, files, padded sequences, training, exports) on Keras's
# PyTorch and JAX backends, every registered model on all three; the heavy variants (`slow`,
# `conftest.heavy`) in passes of their own. Each pass is one pytest process that keeps about one
# core busy, so two lanes run side by side (each framework on one thread: two passes each
# spreading over both cores waited on each other), each lane's output printed whole when it ends.
# The lanes are balanced from pass times measured on a slow 2-core AMD EPYC host (README, Tests),
# and ordered by the passes' peaks (in brackets, measured alone): a pass of 8 GB or more meets
# passes under 5 GB, except at the start, where JAX's pass (5.1 GB at most in the lanes, since
# tests/conftest.py drops JAX's compile caches after each module; 7.5 GB before) begins beside
# JAX's heavy variants (11-15 min, EfficientNet B2-B7's checks among them; the machine's peak,
# 12.6-13.3 GB, came 10-12 min in, in the three runs since; 15.0 GB before the caches were dropped):
#   lane 1: JAX's heavy variants (8.4 GB) but its largest gradient checks, beside JAX's pass;
#           TensorFlow's pass but SUBPROCESS_FILES (4.0); TensorFlow's heavy variants (6.0);
#           then JAX's largest gradient checks but ViT-L's (JAX_LARGE: 6.5), beside
#           SUBPROCESS_FILES;
#   lane 2: JAX's pass (5.1); on TensorFlow, the `alone` checks (ViT-L and ViT-H: 9.2), beside
#           TensorFlow's pass; PyTorch's pass with its heavy variants and ViT-L's gradient
#           checks (5.6; one process: `-k` matches markers too), then ViT-L's gradient checks on
#           JAX (5.8), beside TensorFlow's heavy variants; on TensorFlow, the tests that run their
#           work in processes of their own (SUBPROCESS_FILES: data-parallel Keras against
#           PyTorch DDP; `.keras` files crossing the three backends).
LANE_THREADS := NNZOO_TEST_THREADS=1 OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 \
	XLA_FLAGS="--xla_cpu_multi_thread_eigen=false $(XLA_FLAGS)"

HEAVY := keras and slow and not alone
# ViT-L and ViT-H's float64 gradient checks (`alone`: 304-632M parameters, 5.8-12.5 GB, 1-2.5 min
# each): ViT-L/16's and ViT-L/32's on all three backends (ALONE_EVERY_BACKEND). For the test
# budget, not ViT-H/14's (ViT-L's layer types, wider and deeper: 10.5-13.1 GB, which no other
# pass can run beside, and 6.0 min on both cores after the lanes: a clean-clone run so made took
# 43.2 min here, 2026-12-07); it passes on all three backends (README, Training parity), by hand:
# `KERAS_BACKEND=... pytest -m alone -k "test_gradient_parity and vit_h_14"`, or on all three:
# `make test-largest`.
ALONE_EVERY_BACKEND := test_gradient_parity and (vit_l_16 or vit_l_32)
# The `alone` gradient checks `make test` leaves out (ViT-H/14's): the rest of them.
ALONE_LEFT_OUT := test_gradient_parity and not ($(ALONE_EVERY_BACKEND))
# JAX's largest heavy gradient checks, in a pass of their own (JAX_LARGE and the heavy pass's
# `-k` are each other's complement, so every heavy check runs once per backend).
JAX_LARGE := test_gradient_parity and (resnext101 or wide_resnet101 or convnext_base)
# TensorFlow's oneDNN CPU allocator keeps what a dropped build held (measured: 5.5 GB after
# ViT-L/16's gradient check); with this it goes back, so each check starts from empty (and
# ResNeXt-101's and Wide ResNet-101's gradient checks peak at 6.0 GB, not 7.9, no slower).
TF_RETURNS_MEMORY := TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1
# The same for JAX: glibc keeps the large buffers XLA frees in its heap, and JAX's heavy pass grew
# from 2.3 to 8.4 GB between checks (peak 10.0 GB); returning blocks over 4 MB to the system kept
# it under 3.9 GB between checks (peak 8.4 GB), in the same time. (Without it, in a run before
# `nnzoo.xla`'s rewrite, the machine peaked at 14.2 GB with JAX's heavy pass beside JAX's.)
JAX_RETURNS_MEMORY := MALLOC_MMAP_THRESHOLD_=4194304 MALLOC_TRIM_THRESHOLD_=4194304
SUBPROCESS_FILES := tests/test_distributed.py tests/test_keras_backends.py
# NumPy asks for transparent huge pages for every array of 4 MB or more (`madvise`), and on this
# VM a fresh huge page costs 3.5-6 s per GB to fault in, against 0.5-1 s per GB in 4 kB pages
# (measured: 4-11 GB of `np.ones` in fresh processes; the pages come back fast only when
# reused within one process). Numpy's own switch turns it off for the lanes: side by side on one
# thread, ResNet-152's, EfficientNet-B7's and Transformer-base's float64 gradient checks took
# 48.5-50.6 s instead of 59.1-64.4 on Keras/TensorFlow, 95.8 instead of 114.3 on Keras/JAX and
# 35.9 instead of 60.0 on Keras/PyTorch, and TensorFlow's `alone` pass 242 s instead of 252.
# In the lanes (a clean-clone run, 2026-12-07) the passes of large arrays ran at their fastest
# yet (TensorFlow's heavy variants 7.4 min against 7.7-8.5 in the three runs before, JAX's
# largest gradient checks 1.9 against 2.1-2.4), but the light passes moved more from run to run
# than that: the lanes ended 37.1 min in, against 35.2-37.4 for those three runs, whole.
# ViT-H/14's check, which frees and takes again the same 10 GB all along, is faster with them
# (LARGEST_PAGES; alternating, on Keras/TensorFlow, two threads: 152 and 121 s against 171 and 140).
LANE_PAGES := NUMPY_MADVISE_HUGEPAGE=0
LARGEST_PAGES := NUMPY_MADVISE_HUGEPAGE=1
# glibc keeping what a process frees in its heap and taking it again (KEEP_HEAP): arrays over
# 32 MB are otherwise mapped and unmapped one by one, and each fresh mapping is faulted in anew;
# one arena (with one per thread ViT-H's check grew to 17.6 GB); nnzoo.guard trims the heap after
# each release of 1 GiB or more, so the memory guard reads what is free. Measured on the 2-core
# AMD EPYC: ViT-H/14's check alone, both cores, TensorFlow 102 s and 13.1 GB (one core with
# glibc's defaults: 186 s, 71 s of it system time), PyTorch 89 s and 11.0 GB (LARGEST_HEAP; not
# on JAX: eager JAX's buffers so kept took it to 15.7 GB); side by side, one thread, TensorFlow's
# `alone` pass 245 s against 278 (system time 31 s against 62; peak 9.2 GB against 9.0).
# Not (yet) elsewhere: TensorFlow's heavy variants took 459 s against 466; PyTorch's ViT-L
# gradient checks 114 s against 141 (peak 7.1 GB against 6.0), but they share a process with
# PyTorch's whole pass, which was not measured so. How much a kept heap grows depends on the
# order of a process's allocations: on a 2-core Intel Xeon (2026-12-08) ViT-H/14's check on
# TensorFlow so kept peaked at 15.7 GB (111 s, in `make test-largest`) and 13.7 GB (126 s) in two
# runs, 17.6 GB with blocks over 64 MB still mapped, against 12.0 GB (141 s) with glibc's defaults
# and NumPy's huge pages; so TensorFlow's ViT-H check keeps LARGEST_PAGES, and LARGEST_HEAP is
# PyTorch's (there 93 s and 12.7 GB against 121 s and 11.1 GB).
KEEP_HEAP := MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1099511627776
LARGEST_HEAP := NUMPY_MADVISE_HUGEPAGE=0 $(KEEP_HEAP)

test: $(STAMP)
	$(LANE_THREADS) $(LANE_PAGES) $(MAKE) --no-print-directory --jobs=2 --output-sync=target \
		test-lane-1 test-lane-2

test-lane-1: $(STAMP)
	@echo "== Keras on JAX: the heavy variants (slow) but the largest gradient checks =="
	KERAS_BACKEND=jax $(JAX_RETURNS_MEMORY) $(BIN)/python -m pytest -m "$(HEAVY)" \
		-k "not ($(JAX_LARGE))"
	@echo "== Keras on TensorFlow: every test but the heavy variants and $(SUBPROCESS_FILES) =="
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -m "not slow" \
		$(addprefix --ignore=,$(SUBPROCESS_FILES))
	@echo "== Keras on TensorFlow: the heavy variants (slow) =="
	KERAS_BACKEND=tensorflow $(TF_RETURNS_MEMORY) $(BIN)/python -m pytest -m "slow and not alone"
	@echo "== Keras on JAX: the largest gradient checks but ViT-L's =="
	KERAS_BACKEND=jax $(JAX_RETURNS_MEMORY) $(BIN)/python -m pytest -m "keras and slow" \
		-k "$(JAX_LARGE)"

test-lane-2: $(STAMP)
	@echo "== Keras on JAX: the tests marked keras =="
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m "keras and not slow"
	@echo "== Keras on TensorFlow: the heavy variants marked alone (ViT-L, ViT-H) =="
	KERAS_BACKEND=tensorflow $(TF_RETURNS_MEMORY) $(KEEP_HEAP) $(BIN)/python -m pytest -m alone \
		-k "not test_gradient_parity or ($(ALONE_EVERY_BACKEND))"
	@echo "== Keras on PyTorch: the tests marked keras, the heavy variants and ViT-L's gradients =="
	KERAS_BACKEND=torch $(BIN)/python -m pytest -m keras -k "not alone or ($(ALONE_EVERY_BACKEND))"
	@echo "== Keras on JAX: ViT-L's gradient checks =="
	KERAS_BACKEND=jax $(JAX_RETURNS_MEMORY) $(BIN)/python -m pytest -m alone \
		-k "$(ALONE_EVERY_BACKEND)"
	@echo "== Keras on TensorFlow: $(SUBPROCESS_FILES) =="
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -m "not slow" $(SUBPROCESS_FILES)

# The gradient checks `make test` leaves out for its budget (ALONE_LEFT_OUT: ViT-H/14's) on the
# three Keras backends, one after another, each with the settings that hand a dropped build's
# memory back or keep it for reuse (LARGEST_PAGES, LARGEST_HEAP; measured on the 2-core AMD EPYC
# with NumPy's huge pages and glibc's defaults everywhere: 6.0-6.5 min, the largest process
# 11.4-12.4 GB; on the 2-core Intel Xeon, one check at a time: TensorFlow 141 s and 12.0 GB, JAX
# 116 s and 11.0 GB, PyTorch 93 s and 12.7 GB).
test-largest: $(STAMP)
	@echo "== ViT-H/14's gradient checks, on TensorFlow, JAX and PyTorch in turn (ALONE_LEFT_OUT) =="
	KERAS_BACKEND=tensorflow $(TF_RETURNS_MEMORY) $(LARGEST_PAGES) $(BIN)/python -m pytest \
		-m alone -k "$(ALONE_LEFT_OUT)"
	KERAS_BACKEND=jax $(JAX_RETURNS_MEMORY) $(LARGEST_PAGES) $(BIN)/python -m pytest -m alone \
		-k "$(ALONE_LEFT_OUT)"
	KERAS_BACKEND=torch $(LARGEST_HEAP) $(BIN)/python -m pytest -m alone -k "$(ALONE_LEFT_OUT)"

# One zoo CNN trained on scikit-learn's bundled digits in PyTorch and in Keras from the same
# weights (float64: the curves agree within the parity bound): both test accuracies, and the two
# loss curves in out/digits.png.
train-demo: $(STAMP)
	mkdir -p out
	$(BIN)/python examples/digits.py --dtype float64 --out out/digits.png

# The benchmarks also need the references and matplotlib (the bench extra); `make test` does not.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) --no-compile -e ".[dev,bench]"
	$(COMPILE)
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run

bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run --quick

lint: $(STAMP)
	$(BIN)/python -m ruff check nnzoo tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info
