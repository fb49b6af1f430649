"""Timers and peak memory, with no dependency beyond the standard library.

Timing: warm-up calls first (never counted: they trace, compile, allocate, fill caches), then a
fixed number of repeats; a repeat runs the call enough times to last at least `min_repeat_s`
(so that a 2 ms batch-1 call is not timed by a 2 ms clock read), and reports the time per call.
The summary is the median with the min and max over repeats: on shared machines the median is
the number to compare and the spread says how much to trust it. The worker interleaves the
repeats of the implementations it compares (nnzoo, then each reference, in rotating order), so
that a neighbour's load that comes and goes hits all of them alike.

Peak memory: the process's resident-set high-water mark (`VmHWM` in /proc/self/status). Linux
resets it to the current RSS when "5" is written to /proc/self/clear_refs, so each phase gets its
own peak: `peak_mib` is the highest RSS during the phase minus the RSS before it, i.e. the memory
the phase needed on top of what was already there (for a build: the weights; for inference:
activations and workspace; for training: activations kept for backward, gradients, optimizer
state). `tracemalloc` would see only Python objects, not the frameworks' native buffers, and
`ru_maxrss` cannot be reset. Where /proc is unavailable (not Linux) the figures are left out.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

_STATUS = "/proc/self/status"


@dataclass
class Timing:
    """Seconds per call: median, min and max over `repeats`, each of `calls` calls."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int
    calls: int
    first_call_s: float  # the first warm-up call alone: tracing / compiling shows here

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _identity(out: Any) -> Any:
    return out


def warm(fn: Callable[[], Any], warmup: int, sync: Callable[[Any], Any] = _identity
         ) -> tuple[float, float]:
    """Run the untimed warm-up calls; return (first call's seconds, last call's seconds)."""
    times = []
    for _ in range(max(1, warmup)):
        start = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - start)
    return times[0], times[-1]


def calls_per_repeat(seconds: float, min_repeat_s: float) -> int:
    return max(1, math.ceil(min_repeat_s / max(seconds, 1e-6)))


def timed(fn: Callable[[], Any], calls: int, sync: Callable[[Any], Any] = _identity) -> float:
    """One repeat: seconds per call, averaged over `calls` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(calls):
        sync(fn())
    return (time.perf_counter() - start) / calls


def median_interval(samples: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A confidence interval for the median that assumes nothing about the noise's shape: the
    order statistics j and n + 1 - j, with j the largest for which P(Binomial(n, 1/2) < j) stays
    within (1 - confidence) / 2. Timing noise on a shared machine is one-sided and spiky, so an
    interval from a normal approximation would mislead."""
    s = sorted(samples)
    n, tail = len(s), (1 - confidence) / 2
    j, below = 0, 0.0  # below: P(Binomial(n, 1/2) <= j - 1)
    while j < n and below + math.comb(n, j) / 2**n <= tail:
        below += math.comb(n, j) / 2**n
        j += 1
    j = max(j, 1)  # too few samples for the confidence asked: the whole range
    return s[j - 1], s[n - j]


def summarize(samples: list[float], calls: int, first: float) -> Timing:
    return Timing(statistics.median(samples), min(samples), max(samples), len(samples), calls,
                  first)


def time_call(
    fn: Callable[[], Any],
    *,
    warmup: int = 2,
    repeats: int = 5,
    min_repeat_s: float = 0.1,
    sync: Callable[[Any], Any] = _identity,
) -> Timing:
    """Warm up, then time `repeats` repeats of `fn()` (its result passed through `sync`)."""
    first, last = warm(fn, warmup, sync)
    calls = calls_per_repeat(last, min_repeat_s)
    return summarize([timed(fn, calls, sync) for _ in range(repeats)], calls, first)


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS) as f:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def rss_mib() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class Peak:
    """Filled in when the `peak_memory()` block ends; None where the platform cannot tell."""

    before_mib: float | None = None
    peak_mib: float | None = None  # the high-water mark during the block, absolute

    @property
    def extra_mib(self) -> float | None:
        if self.before_mib is None or self.peak_mib is None:
            return None
        return max(0.0, self.peak_mib - self.before_mib)


@contextmanager
def peak_memory() -> Iterator[Peak]:
    """Measure the RSS high-water mark of the enclosed block (see the module docstring)."""
    import gc

    gc.collect()
    result = Peak()
    resettable = _reset_peak()
    result.before_mib = rss_mib()
    try:
        yield result
    finally:
        hwm = _status_kib("VmHWM")
        if resettable and hwm is not None:
            result.peak_mib = hwm / 1024
        else:
            result.before_mib = None
