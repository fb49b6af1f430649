"""The memory guard: a build or a check that would not fit in memory is refused before anything
is allocated, with both figures and the way to override.

Everything is estimated from the spec. Parameters are counted by building the PyTorch twin on
the `meta` device (shapes, no storage: even a 10-billion-parameter MLP costs nothing), once per
spec: the count is cached, so the builds of a parity check or a test suite pay for it once. The
count stops as soon as it passes the budget, so the work is bounded by what would fit: a spec
with ten million layers costs the construction (on meta) of the first few thousand, not of all.
Activation memory -- every layer's output at the batch, what a training step keeps and an upper
bound for inference -- is bounded from the input's size, and where that bound does not settle
it, measured by one forward pass on `meta`, for checks that run a model.

The budget is the memory available now, the least of: MemAvailable (/proc/meminfo, or psutil
where /proc is missing), the cgroup's headroom (a container's limit) and the address-space
headroom (`ulimit -v`). `max_memory=` on `nnzoo.build`, `with nnzoo.guard.limit(...)` or the
NNZOO_MAX_MEMORY environment variable replace it: bytes, a size such as "512M" or "64G"
(powers of 1024), or "off".

The guard needs PyTorch to count; where it is not installed, nothing is refused.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import importlib
import importlib.util
import math
import os
import re
import resource
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nnzoo.errors import MemoryGuardError, SpecError
from nnzoo.specs.base import Spec

ENV = "NNZOO_MAX_MEMORY"
DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}

#: Peak memory of one build per byte of weights: the weights plus initializer temporaries and
#: framework bookkeeping. Measured (peak RSS growth / weight bytes): PyTorch 1.0; Keras 1.15
#: (ViT-B/16) to 1.6 (ResNet-50, many small layers).
BUILD_OVERHEAD = 1.5
#: A numeric parity check holds up to four float64 copies of the weights at once (both builds, a
#: state dict in transit, the batch-norm twin); measured 28.6 (ViT-B/16), 31.7 (BERT-base sized
#: transformer) and 38.7 (ResNet-50) bytes per parameter, i.e. 3.6 to 4.8 copies.
PARITY_COPIES = 5.0
#: An export holds the model, the artifact's copy of the weights while it is written and again
#: when it is reloaded in its runtime for the check, and (Keras) a float64 twin for the rounding
#: noise: four float32 copies beyond the model's own. An estimate, not yet measured.
EXPORT_COPIES = 4.0
#: Bounds on every layer's outputs together per input element, so that a check at a batch needs
#: no forward pass when the bound already fits: measured on the zoo at batch 1, at most 1,488
#: for image and feature inputs (ViT-H/14; ResNets 50-614, U-Net 539) and 168,864 per token id
#: (the BERT-base sized transformer). Only where the bound does not settle it is the model run
#: on meta to measure (0.1-0.5 s, and 2 s for the first in a process).
ACTIVATIONS_PER_INPUT = 2_000
ACTIVATIONS_PER_TOKEN = 1_000_000


# ---- the budget -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """Bytes one build or check may use (`math.inf`: no limit) and where the figure comes from."""

    bytes: float
    source: str


_OVERRIDE: contextvars.ContextVar[tuple[float, str] | None] = contextvars.ContextVar(
    "nnzoo_max_memory", default=None)

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_OFF = ("off", "none", "unlimited", "inf")


def parse_size(value: Any, *, name: str = "max_memory") -> float:
    """Bytes from an int, a size such as "512M", "64G", "1.5GiB" (powers of 1024), or "off"
    (`math.inf`)."""
    allowed = "bytes (an int >= 0), a size such as '512M' or '64G' (powers of 1024), or 'off'"
    if isinstance(value, bool):
        raise SpecError(name, value, allowed)
    if isinstance(value, int | float):
        if value == math.inf:
            return math.inf
        if value >= 0 and math.isfinite(value):
            return float(int(value))
        raise SpecError(name, value, allowed)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _OFF:
            return math.inf
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", text)
        if match:
            return float(int(float(match.group(1)) * _UNITS[match.group(2)]))
    raise SpecError(name, value, allowed)


def limit(max_memory: Any) -> contextlib.AbstractContextManager[None]:
    """Within the `with` block (this thread), builds and checks may use `max_memory` (see
    `parse_size`); None leaves the budget as it is. The value is checked here, at once."""
    if max_memory is None:
        return contextlib.nullcontext()
    return _overriding(parse_size(max_memory))


@contextlib.contextmanager
def _overriding(size: float) -> Iterator[None]:
    token = _OVERRIDE.set((size, "max_memory="))
    try:
        yield
    finally:
        _OVERRIDE.reset(token)


def budget() -> Budget:
    """The budget in force: an override (`limit`, then NNZOO_MAX_MEMORY), else `available()`."""
    override = _OVERRIDE.get()
    if override is not None:
        return Budget(*override)
    env = os.environ.get(ENV, "").strip()
    if env:
        return Budget(parse_size(env, name=ENV), ENV)
    return available()


def available() -> Budget:
    """The memory available now: the least of MemAvailable, the cgroup's headroom and the
    address-space headroom (`ulimit -v`); `math.inf` where none is known."""
    known = [(b, s) for b, s in ((_mem_available(), "MemAvailable"),
                                 (_cgroup_headroom(), "the cgroup's memory limit"),
                                 (_address_space_headroom(), "the address-space limit (ulimit -v)"))
             if b is not None]
    if not known:
        return Budget(math.inf, "no memory figure on this system")
    return Budget(*min(known))


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _mem_available() -> float | None:
    text = _read("/proc/meminfo")
    if text:
        match = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text, re.MULTILINE)
        if match:
            return float(int(match.group(1)) * 1024)
    if "psutil" in sys.modules or importlib.util.find_spec("psutil") is not None:
        import psutil

        return float(psutil.virtual_memory().available)
    return None


def _cgroup_headroom() -> float | None:
    """limit - usage of this process's memory cgroup (v2, else v1); None without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, used = _read(limit_file), _read(usage_file)
        if cap is None or used is None:
            continue
        cap = cap.strip()
        if not cap.isdigit() or int(cap) >= 2**60:  # "max", or v1's "no limit" sentinel
            return None
        return float(max(0, int(cap) - int(used.strip() or 0)))
    return None


def _address_space_headroom() -> float | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    status = _read("/proc/self/status") or ""
    match = re.search(r"^VmSize:\s+(\d+)\s*kB", status, re.MULTILINE)
    used = int(match.group(1)) * 1024 if match else 0
    return float(max(0, soft - used))


# ---- counting on the meta device ----------------------------------------------------------------
class _Stop(Exception):
    """Raised inside a meta build once its tensors pass the budget; carries the count so far."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.total = total


class _Meter:
    def __init__(self, stop_at: float) -> None:
        self.total, self.stop_at = 0, stop_at

    def add(self, n: int) -> None:
        self.total += n
        if self.total > self.stop_at:
            raise _Stop(self.total)


_LOCAL = threading.local()
_HOOKED = False
_COUNTS: OrderedDict[Spec, int | None] = OrderedDict()
_ACTIVATIONS: OrderedDict[Spec, int | None] = OrderedDict()
_CACHE_SIZE = 1024


def _remember(cache: OrderedDict[Spec, Any], spec: Spec, value: Any) -> Any:
    cache[spec] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _on_tensor(module: Any, name: str, tensor: Any) -> None:
    """torch's global parameter/buffer registration hook: meters this thread's meta build only."""
    meter = getattr(_LOCAL, "meter", None)
    if meter is not None and tensor is not None:
        meter.add(tensor.numel())


def _meta_build(spec: Spec, stop_at: float = math.inf) -> Any:
    """The PyTorch twin of `spec` on the meta device; raises `_Stop` past `stop_at` elements."""
    global _HOOKED
    import torch

    from nnzoo import backends

    with backends.FRAMEWORK_LOCK:  # the family's module may be imported here, first
        family = importlib.import_module(f"nnzoo.torch_impl.{spec.family}")
        if not _HOOKED:
            from torch.nn.modules import module as torch_module

            torch_module.register_module_parameter_registration_hook(_on_tensor)
            torch_module.register_module_buffer_registration_hook(_on_tensor)
            _HOOKED = True
    _LOCAL.meter = _Meter(stop_at)
    try:
        with torch.device("meta"):
            return family.build(spec)
    finally:
        _LOCAL.meter = None


def parameter_count(spec: Spec, stop_at: float = math.inf) -> tuple[int, bool] | None:
    """(parameters and buffers, exact): exact=False when the count stopped past `stop_at`.
    None where no meta build is possible (PyTorch missing, or an op without a meta kernel)."""
    n = _COUNTS.get(spec, -1)  # .get: another thread may evict between a test and a read
    if n != -1:
        return None if n is None else (n, True)
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        model = _meta_build(spec, stop_at)
    except _Stop as stop:  # past the budget: no need to know by how much
        return stop.total, False
    except Exception:  # a build that cannot run on meta: the guard has nothing to say
        return _remember(_COUNTS, spec, None)
    n = sum(t.numel() for t in model.parameters()) + sum(t.numel() for t in model.buffers())
    return _remember(_COUNTS, spec, n), True


def activation_count(spec: Spec) -> int | None:
    """Output elements of every layer (leaf module) for one example; None if unknown (a model
    that reads its input's values, such as packing padded sequences, cannot run on meta)."""
    known = _ACTIVATIONS.get(spec, -1)
    if known != -1:
        return known
    import torch

    total = 0

    def hook(_m: Any, _args: Any, out: Any) -> None:
        nonlocal total
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                total += t.numel()

    try:
        model = _meta_build(spec).eval()
        for m in model.modules():
            if not list(m.children()):
                m.register_forward_hook(hook)
        dtype = torch.int64 if spec.input_kind == "tokens" else torch.float32
        with torch.no_grad():
            model(torch.ones((1, *spec.input_shape()), dtype=dtype, device="meta"))
    except Exception:
        return _remember(_ACTIVATIONS, spec, None)
    return _remember(_ACTIVATIONS, spec, total)


def weight_bytes(spec: Spec, dtype: str) -> float:
    """One copy of the weights (and batch-norm state) in `dtype`; 0 where it cannot be counted."""
    counted = parameter_count(spec)
    return counted[0] * DTYPE_BYTES[dtype] if counted else 0.0


# ---- freeing what a check dropped ---------------------------------------------------------------
#: A full collection walks every object of the process: 0.4-1.3 s once TensorFlow, JAX and PyTorch
#: are loaded (measured in a test session on a 2-core machine), and a parity check used to pay it
#: after every pair of builds. Dropped builds are collected at once only when they, with those
#: dropped before them, hold at least this many bytes of weights; the rest is left to Python's
#: own collector. So what waits for collection stays bounded, and small checks stay cheap.
COLLECT_ABOVE = 512 * 2**20
_dropped = [0.0]  # bytes of weights dropped since the last collection (a race only misestimates)
#: Bytes of weights dropped at once (ViT-L's and ViT-H's builds, in float64 also ResNeXt-101's)
#: past which the C heap is trimmed too (`_trim_heap`). Not after every collection: memory handed
#: back is faulted in afresh when taken again, which on this VM costs about a second per GB.
TRIM_ABOVE = 2**30


def release(spec: Spec, *, dtype: str = "float32", copies: float = 2.0) -> None:
    """Say that `copies` builds of `spec` in `dtype` were just dropped; collect if that (and what
    was dropped before) reaches `COLLECT_ABOVE`, and trim the C heap if this drop alone reaches
    `TRIM_ABOVE`. Keras models hold reference cycles, so only a collection frees them; the large
    ViTs are gigabytes each."""
    counted = parameter_count(spec)
    now = (counted[0] if counted else math.inf) * DTYPE_BYTES.get(dtype, 8) * copies
    _dropped[0] += now
    if _dropped[0] >= COLLECT_ABOVE:
        gc.collect()
        _dropped[0] = 0.0
    if now >= TRIM_ABOVE:
        _trim_heap()


def _trim_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's `malloc_trim`), so that the next
    check reads, in MemAvailable, what the dropped builds held. Where a process keeps freed memory
    in its heap for reuse (`MALLOC_MMAP_MAX_=0`, as `make test-largest` runs), this is what lets
    the guard admit PyTorch's half of a gradient check after Keras's."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return
    trim(0)


# ---- the check ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """What a build or check needs, in bytes."""

    params: int
    param_bytes: int
    activation_bytes: int
    exact: bool = True  # False: the count stopped once past the budget ("at least")

    @property
    def total(self) -> int:
        return self.param_bytes + self.activation_bytes


def human(n: float) -> str:
    """Bytes in powers of 1024: 1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} TiB"  # pragma: no cover


def _on_meta() -> bool:
    """Whether PyTorch builds go to the meta device here (tracing): those allocate nothing."""
    if "torch" not in sys.modules:
        return False
    import torch

    return torch.get_default_device().type == "meta"


def check(spec: Spec, *, what: str = "", dtype: str = "float32", copies: float = BUILD_OVERHEAD,
          batch: int = 0, backend: str | None = None) -> Estimate | None:
    """Refuse (`MemoryGuardError`) what would not fit: `copies` x the weights in `dtype`, plus the
    input and every layer's output at `batch` (0: a build, nothing run). Returns the estimate,
    or None where the guard is off or cannot count. Call it before allocating anything."""
    if backend == "torch" and _on_meta():
        return None
    room = budget()
    if room.bytes == math.inf:
        return None
    width = DTYPE_BYTES.get(dtype, 8)
    # The count stops as soon as it passes the budget: absurd specs cost bounded work.
    counted = parameter_count(spec, stop_at=room.bytes / (width * copies))
    if counted is None:
        return None
    params, exact = counted
    param_bytes = math.ceil(params * width * copies)
    activations = 0
    if batch:
        tokens = spec.input_kind == "tokens"
        inputs = math.prod(spec.input_shape()) * batch
        activations = inputs * (8 if tokens else width)  # the input itself (token ids: int64)
        bound = inputs * (ACTIVATIONS_PER_TOKEN if tokens else ACTIVATIONS_PER_INPUT) * width
        if param_bytes + activations <= room.bytes < param_bytes + activations + bound:
            activations += (activation_count(spec) or 0) * batch * width  # measure, on meta
    est = Estimate(params, param_bytes, activations, exact)
    if est.total > room.bytes:
        raise MemoryGuardError(_message(spec, est, room, what=what, dtype=dtype, copies=copies,
                                        batch=batch),
                               needed=est.total, available=int(room.bytes), source=room.source)
    return est


def _message(spec: Spec, est: Estimate, room: Budget, *, what: str, dtype: str, copies: float,
             batch: int) -> str:
    about = "about" if est.exact else "more than"
    parts = f"{'' if est.exact else 'more than '}{est.params:,} parameters x {DTYPE_BYTES.get(dtype, 8)} "
    parts += f"bytes ({dtype})" + (f" x {copies:g}" if copies != 1 else "")
    if est.activation_bytes:
        parts += f" + {human(est.activation_bytes)} of input and activations at batch {batch}"
    return (f"memory guard: {what or f'a build of {spec.family}'} needs {about} "
            f"{human(est.total)} ({parts}), but {human(room.bytes)} is available ({room.source}); "
            f"refused before allocating. To override: max_memory= on nnzoo.build (or "
            f"`with nnzoo.guard.limit(...)`), or the environment variable {ENV} "
            f"(bytes, e.g. 64G, or 'off')")
