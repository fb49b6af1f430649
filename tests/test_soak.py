"""Soak: 200 build-run-discard cycles over every family and both backends in one process, without
the process growing beyond a stated bound."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

import nnzoo
from conftest import tiny_per_family
from nnzoo.runtime import run

pytestmark = pytest.mark.keras

CYCLES = 200
#: RSS growth allowed over the 200 cycles, after one warm-up cycle of each (family, backend).
#: Measured on the TensorFlow backend: 16.9 MB in a test session. Alone, PyTorch cycles stay
#: flat (0.4 MB over 210) and each Keras build-and-call leaves ~60 KB in TensorFlow's graph
#: bookkeeping (a plain Keras model of six conv blocks leaves 1.3 MB per cycle the same way).
#: On JAX every family grew 18.9 MB; 43.3 MB before Keras's recurrent layers stopped compiling a
#: scan on every eager call there (`keras_impl.recurrent._NativeRNN.inner_loop`).
BOUND_MB = 40


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models: a thread hand-off costs more than the arithmetic (15x on a busy 2-core
    machine), and memory growth does not depend on it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_200_build_run_discard_cycles_do_not_grow_memory(one_torch_thread: None) -> None:
    specs = tiny_per_family()

    def cycle(spec: nnzoo.Spec, backend: str, seed: int) -> None:
        model = nnzoo.build(spec, backend, seed=seed)
        run(model, spec.example_input(2))
        del model

    for spec in specs:  # warm-up: every (family, backend) once -- kernels, caches, pools
        cycle(spec, "torch", 0)
        cycle(spec, "keras", 0)
    gc.collect()
    before = _rss_mb()
    for i in range(CYCLES):
        # Keras on every fifth cycle (40 in all, its families in turn), since a Keras cycle costs
        # ~6x a PyTorch one; PyTorch on the others, every family in turn.
        if i % 5 == 0:
            cycle(specs[i // 5 % len(specs)], "keras", i)
        else:
            cycle(specs[i % len(specs)], "torch", i)
    gc.collect()
    grown = _rss_mb() - before
    print(f"{CYCLES} cycles grew RSS by {grown:.1f} MB")
    assert grown < BOUND_MB, f"{CYCLES} build-run-discard cycles grew RSS by {grown:.1f} MB"
