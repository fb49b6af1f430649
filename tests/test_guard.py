"""The memory guard: too big is refused before anything is allocated, with both figures and the
override; what fits is not slowed down."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nnzoo
from nnzoo import guard
from nnzoo.errors import MemoryGuardError, SpecError
from nnzoo.runtime import count_params


def test_the_issue_reproduction_is_refused_fast_before_allocating() -> None:
    spec = {"family": "mlp", "input_size": 100000, "hidden_sizes": [100000]}
    start = time.perf_counter()
    with pytest.raises(MemoryGuardError) as caught:
        # 1e10 float32 weights (37 GiB, 56 GiB with a build's overhead); the budget is pinned
        # so that a machine with more memory than that does not try the build
        nnzoo.build(spec, max_memory="32G")
    assert time.perf_counter() - start < 2.0
    err = caught.value
    assert err.needed > err.available == 32 * 2**30 and err.source == "max_memory="
    message = str(err)
    assert "a float32 torch build of mlp" in message  # the count stops at the first layer:
    assert "more than 10,000,000,000 parameters" in message  # a 100000 x 100000 weight
    assert "needs more than 55.9 GiB" in message and "but 32 GiB is available" in message
    assert "max_memory=" in message and guard.ENV in message


def test_the_budget_is_the_memory_available_unless_overridden(monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    monkeypatch.delenv(guard.ENV, raising=False)
    room = guard.budget()
    assert room.source in ("MemAvailable", "the cgroup's memory limit",
                           "the address-space limit (ulimit -v)") and 0 < room.bytes < math.inf
    monkeypatch.setenv(guard.ENV, "1K")
    with pytest.raises(MemoryGuardError, match=f"but 1 KiB is available \\({guard.ENV}\\)"):
        nnzoo.build("mlp_small")
    assert nnzoo.count_params(nnzoo.build("mlp_small", max_memory="1G")).total == 7178  # wins
    monkeypatch.setenv(guard.ENV, "off")
    assert guard.check(nnzoo.get_spec("mlp_small")) is None
    monkeypatch.setenv(guard.ENV, "lots")
    with pytest.raises(SpecError, match=guard.ENV):
        nnzoo.build("mlp_small")
    with pytest.raises(SpecError, match="max_memory"):  # refused before any framework runs
        nnzoo.build("mlp_small", max_memory=-5)


@pytest.mark.parametrize(("text", "size"), [
    (1024, 1024), ("512", 512), ("1k", 2**10), ("8M", 8 * 2**20), ("1.5GiB", 1.5 * 2**30),
    ("64G", 64 * 2**30), ("2TB", 2 * 2**40), ("off", math.inf), ("unlimited", math.inf),
])
def test_sizes(text: object, size: float) -> None:
    assert guard.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "1X", "lots", True, -3, float("nan"), [1]])
def test_bad_sizes_are_refused(text: object) -> None:
    with pytest.raises(SpecError, match="max_memory"):
        guard.parse_size(text)


def test_parity_checks_use_the_guard_at_their_own_size() -> None:
    """Both refused before building: a float32 check is budgeted at ~6 MB (one build at a time),
    a numeric one at ~40 MB (float64 copies), so 4M refuses the first and 16M the second."""
    spec = nnzoo.get_spec("mlp_small", input_size=1000, hidden_sizes=(1000,))  # 1M parameters
    with guard.limit("4M"), pytest.raises(MemoryGuardError, match="a parity check of mlp"):
        nnzoo.check_parity(spec)
    with guard.limit("16M"), pytest.raises(MemoryGuardError, match="a numeric parity check of mlp"):
        nnzoo.check_parity(spec, numeric=True)
    with guard.limit("16M"):
        guard.check(spec, what="a parity check of mlp")  # the float32 check's own call: it fits


def test_an_absurd_depth_is_refused_without_building_every_layer() -> None:
    start = time.perf_counter()
    with pytest.raises(MemoryGuardError, match="more than"):
        nnzoo.build("vit_ti_16", depth=10**7, max_memory="64M")  # stops after ~50 blocks
    assert time.perf_counter() - start < 30.0


def test_the_count_is_the_builds_and_costs_nothing_when_cached() -> None:
    spec = nnzoo.get_spec("resnet18_cifar", num_classes=7)
    params, exact = guard.parameter_count(spec)
    model = nnzoo.build(spec)
    counted = count_params(model)
    batches_tracked = sum(1 for k in model.state_dict() if k.endswith("num_batches_tracked"))
    assert exact and params == counted.total + batches_tracked
    start = time.perf_counter()
    for _ in range(100):
        guard.check(spec)
    assert (time.perf_counter() - start) / 100 < 0.005  # measured ~0.1 ms: three small files


def test_a_meta_count_draws_nothing_from_the_global_generator() -> None:
    import torch

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    guard.parameter_count(nnzoo.get_spec("vit_ti_16", depth=3))
    assert torch.equal(torch.rand(3), expected)


def test_activations_count_when_the_bound_does_not_settle_it() -> None:
    """A U-Net on a large image: few weights, large activations -- measured on meta."""
    spec = nnzoo.get_spec("unet_small", image_size=(1024, 1024))
    with guard.limit("2G"):
        guard.check(spec)  # the build alone fits
        with pytest.raises(MemoryGuardError, match="of input and activations at batch 4"):
            guard.check(spec, batch=4, what="a run of unet_small")


def test_an_export_is_guarded_before_anything_is_written(tmp_path: Path) -> None:
    model = nnzoo.build("mlp_small", input_size=1000, hidden_sizes=(1000,), seed=0)  # ~4 MB
    target = tmp_path / "mlp.safetensors"
    with guard.limit("8M"), pytest.raises(MemoryGuardError, match="an export of mlp as safetensors"):
        nnzoo.export(model, "safetensors", target)
    assert not target.exists()


def test_dropped_builds_are_collected_once_they_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small dropped pair waits for Python's own collector; a large one, or small ones adding
    up past COLLECT_ABOVE, is collected at once (a full collection costs ~1 s in a test session).
    Only a large one (TRIM_ABOVE) also trims the C heap: what is handed back is faulted in again."""
    collected: list[int] = []
    trimmed: list[int] = []
    monkeypatch.setattr(guard.gc, "collect", lambda *a: collected.append(1) or 0)
    monkeypatch.setattr(guard, "_trim_heap", lambda: trimmed.append(1))
    monkeypatch.setattr(guard, "_dropped", [0.0])
    small, large = nnzoo.get_spec("mlp_small"), nnzoo.get_spec("vit_b_16")  # ~0.1M, 86M weights
    guard.release(small)
    assert collected == [] and trimmed == []
    guard.release(large, dtype="float64")  # 2 x 86M x 8 bytes: past both thresholds
    assert collected == [1] and guard._dropped == [0.0] and trimmed == [1]
    per_pair = guard.parameter_count(small)[0] * 4 * 2
    for _ in range(math.ceil(guard.COLLECT_ABOVE / per_pair)):
        guard.release(small)
    assert collected == [1, 1] and trimmed == [1]  # small ones: collected, the heap left alone


HEAP_KEPT = r"""
import numpy as np
import nnzoo
from nnzoo import guard

guard.parameter_count = lambda spec, stop_at=None: (10**9, True)  # no meta build: no PyTorch
trim = guard._trim_heap


def resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


spec = nnzoo.get_spec("mlp_small")
start = resident()
block = np.ones(2**28 // 8)  # 256 MB, in the heap: freed, glibc keeps it for reuse
del block
guard._trim_heap = lambda: None
guard.release(spec)
kept = resident() - start
guard._trim_heap = trim
guard.release(spec)
print(kept >> 20, (resident() - start) >> 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap and /proc: Linux")
def test_a_release_hands_a_kept_heap_back() -> None:
    """Where glibc keeps freed memory in its heap (as `make test-largest` has it: no mapping of
    large blocks, no trimming), a release of TRIM_ABOVE or more also trims it, so the memory
    guard's next reading (MemAvailable) sees what the dropped builds held."""
    env = {**os.environ, "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40),
           "NUMPY_MADVISE_HUGEPAGE": "0"}
    out = subprocess.run([sys.executable, "-c", HEAP_KEPT], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    kept, after = (int(v) for v in out.split())
    assert kept >= 200 and after < 50, (kept, after)
