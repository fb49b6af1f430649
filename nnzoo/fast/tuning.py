"""Measuring the candidate paths: prepare, check, warm up, then interleaved timed rounds.

1. Each path in turn (simplest first) is prepared and called once; its output is checked against
   the plain call's (the first path, e.g. `model(x, training=False)`) by nnzoo.parity's float32
   criterion; then it is called once more (twice for compiled paths, which may specialize on the
   second call) to estimate its time. A compiled path runs only where the compile rule allows it
   (`compile=True`, or `compile=None` and its predicted compile time fits the budget left); the
   other paths stop being tried once the budget is spent (the plain call always runs).
2. Timed rounds: each round times every surviving path, in an order that rotates from round to
   round, so that a neighbour's load that comes and goes hits all of them alike. A repeat is as
   many back-to-back calls as fill `MIN_REPEAT_S`, its time per call the sample. `ROUNDS` rounds,
   up to `MAX_ROUNDS` while the two best lie within `CLOSE` of each other, fewer if the budget
   runs out (at least one); after three, a path slower than the best by more than `PRUNE` is
   dropped.
3. The ranking is paired (`scores`): each path's samples are divided by the leader's (the lowest
   median) from the same round, and the median of those ratios is its score. A load that comes
   and goes between rounds moves both samples of a pair alike and cancels in the ratio; the
   medians alone let one lucky round pick a path 5-10% slower (bench-quick, 2026-12-03). The
   choice is the lowest score; among paths within `TIE` of it, the simplest (first in order),
   which costs nothing to compile in the next process.
"""

from __future__ import annotations

import contextlib
import copy
import math
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnzoo.errors import InputError
from nnzoo.fast.paths import Call, Path

ROUNDS = 5
MAX_ROUNDS = 15  # more rounds while the two best are a close call and the budget lasts
CLOSE = 0.10
MIN_REPEAT_S = 0.05
PRUNE = 1.3
TIE = 0.02
#: A path off by more than this many float32 bounds is wrong, not rounded differently: the
#: plain call's float64 twin (seconds to build, on JAX) is not worth building to say so.
GROSS = 1000.0
#: Predicted torch.compile time: (seconds, seconds per leaf module or Keras layer), per
#: framework. Measured on a 2-core AMD EPYC shared with other work (torch 2.13, inductor, cold
#: caches): PyTorch mlp_small 20 s (7 leaf modules), cnn_small 31 s (17), vit_ti_16 91 s (112),
#: resnet18 150 s (52); Keras on PyTorch mlp_small 21 s (8 layers), cnn_small 70 s (19 layers).
TORCH_COMPILE_S = {"torch": (15.0, 1.0), "keras/torch": (15.0, 3.0)}
#: XLA on TensorFlow retraces the same graph as tf.function and then compiles it: predicted at
#: this multiple of the tf.function path's first call (measured 1.4-1.6x on cnn_small, resnet18).
XLA_FACTOR = 2.0


@dataclass
class Trial:
    """One path's fate: its call, outputs' agreement, and time samples (seconds per call)."""

    path: Path
    call: Call | None = None
    status: str = "not tried"  # ok | skipped | failed | mismatch
    note: str = ""
    first_s: float | None = None
    estimate_s: float = 0.0
    calls: int = 1
    samples: list[float] = field(default_factory=list)
    max_diff: float | None = None
    outputs: list[np.ndarray] = field(default_factory=list, repr=False)  # the plain call's only
    noise: float | None = None

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


def leaves(out: Any) -> list[Any]:
    if isinstance(out, dict):
        return [x for k in sorted(out) for x in leaves(out[k])]
    if isinstance(out, list | tuple):
        return [x for o in out for x in leaves(o)]
    return [out]


def sync(out: Any) -> None:
    """Wait until the work behind `out` is done (JAX and TensorFlow may return early)."""
    for leaf in leaves(out):
        if hasattr(leaf, "block_until_ready"):
            leaf.block_until_ready()
        elif type(leaf).__module__.startswith("tensorflow") and hasattr(leaf, "numpy"):
            leaf.numpy()
        elif getattr(getattr(leaf, "device", None), "type", None) == "cuda":
            import torch

            torch.cuda.synchronize(leaf.device)


def _numpy(out: Any) -> list[np.ndarray]:
    from nnzoo.runtime import to_numpy

    return [to_numpy(leaf) for leaf in leaves(out)]


def agreement(want: list[np.ndarray], got: list[np.ndarray], name: str, noise: float = 0.0
              ) -> tuple[bool, float, float]:
    """(ok, max|diff|, bound) by nnzoo.parity's float32 criterion, over every output."""
    from nnzoo.parity import compare

    if len(want) != len(got) or any(a.shape != b.shape for a, b in zip(want, got)):
        return False, math.inf, 0.0
    found = [compare(a, b, name, dtype="float32", noise=noise) for a, b in zip(want, got)]
    worst = max(found, key=lambda a: a.max_abs / a.bound if a.bound else math.inf)
    return all(a.ok for a in found), worst.max_abs, worst.bound


def rounding_noise(model: Any, label: str, inputs: tuple[Any, ...], want: list[np.ndarray]
                   ) -> float:
    """How far the float32 plain call lies from the same weights in float64 (parity's `noise`).

    Computed only when a path misses the fixed bound: a deep network's float32 rounding can
    exceed it, and a path that reorders sums (freezing folds batch norm into convolutions) is
    then as right as the plain call. PyTorch models and nnzoo's Keras builds; 0 otherwise.
    """
    try:
        if label == "torch":
            import torch

            twin = copy.deepcopy(model).double().eval()
            xs = [x.double() if x.is_floating_point() else x for x in inputs]
            with torch.no_grad():
                y64 = _numpy(twin(*xs))
        else:
            spec = getattr(model, "spec", None)
            if spec is None or len(inputs) != 1:
                return 0.0
            from nnzoo.backends import build_native, float64_scope
            from nnzoo.runtime import to_numpy

            with float64_scope():
                twin = build_native(spec, "keras", dtype="float64")
                twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
                x = to_numpy(inputs[0])
                y64 = _numpy(twin(x.astype(np.float64) if x.dtype.kind == "f" else x,
                                  training=False))
    except Exception:  # no float64 twin to be had: the fixed bound stands
        return 0.0
    return max(float(np.max(np.abs(a - b.astype(np.float64)))) for a, b in zip(y64, want))


def units(model: Any, label: str) -> int:
    """Leaf modules (PyTorch) or layers (Keras): what compile time grows with."""
    if label == "torch":
        return sum(1 for m in model.modules() if not any(True for _ in m.children()))
    return len(getattr(model, "layers", [])) or 1


def predicted_compile_s(path: Path, model: Any, label: str, trials: list[Trial]) -> float:
    if label == "keras/tensorflow":
        traced = next((t for t in trials if t.path.name == "function" and t.first_s), None)
        return XLA_FACTOR * traced.first_s if traced else 0.0
    base, per = TORCH_COMPILE_S[label]
    return base + per * units(model, label)


@contextlib.contextmanager
def progress_bar(enabled: bool, title: str, total: int) -> Iterator[Any]:
    """A rich progress bar on stderr; a do-nothing stand-in when disabled."""
    if not enabled:
        yield lambda description=None, advance=0: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(title, total=total)

        def update(description: str | None = None, advance: int = 0) -> None:
            bar.update(task, advance=advance,
                       description=f"{title}: {description}" if description else title)

        yield update


def tune(model: Any, label: str, paths: list[Path], inputs: tuple[Any, ...], *,
         budget: float, compile: bool | None, show: bool) -> list[Trial]:
    """Every path tried, checked and timed within about `budget` seconds (module docstring)."""
    start = time.perf_counter()
    trials = [Trial(p) for p in paths]
    want: list[np.ndarray] = []
    noise: float | None = None  # the plain call's float32 rounding, measured when first needed
    with progress_bar(show, f"nnzoo.optimize ({label})", len(paths) + ROUNDS) as update:
        for i, trial in enumerate(trials):
            update(trial.path.name + (" (compiling)" if trial.path.compiles else ""))
            left = budget - (time.perf_counter() - start)
            skip = _skip(trial, model, label, trials, left, compile, first=i == 0)
            if skip:
                trial.status, trial.note = "skipped", skip
                update(advance=1)
                continue
            _try(trial, model, label, inputs, first=i == 0, want=want, noise=noise)
            if i == 0:
                want = trial.outputs
            noise = trial.noise if trial.noise is not None else noise
            update(advance=1)
        _rounds(trials, inputs, start + budget, update)
    return trials


def _try(trial: Trial, model: Any, label: str, inputs: tuple[Any, ...], *, first: bool,
         want: list[np.ndarray], noise: float | None) -> None:
    """Prepare, first call (checked), warm-up call(s); sets the trial's status."""
    try:
        target = copy.deepcopy(model) if trial.path.copies else model
        trial.call = trial.path.make(target)
        begin = time.perf_counter()
        out = trial.call(*inputs)
        sync(out)
        trial.first_s = time.perf_counter() - begin
        got = _numpy(out)
        if first:
            trial.outputs = want = got
        ok, diff, bound = agreement(want, got, trial.path.name, noise or 0.0)
        if not ok and noise is None and diff <= GROSS * bound:
            trial.noise = rounding_noise(model, label, inputs, want)
            ok, diff, bound = agreement(want, got, trial.path.name, trial.noise)
        trial.max_diff = diff
        if not ok:
            trial.status, trial.call = "mismatch", None
            trial.note = (f"outputs differ from the plain call by {diff:.2e} (the float32 bound "
                          f"is {bound:.2e})")
            return
        for _ in range(2 if trial.path.compiles else 1):
            begin = time.perf_counter()
            sync(trial.call(*inputs))
            trial.estimate_s = time.perf_counter() - begin
        trial.calls = max(1, math.ceil(MIN_REPEAT_S / max(trial.estimate_s, 1e-6)))
        trial.status = "ok"
    except Exception as exc:  # one broken path does not stop the others
        if first:  # the plain call itself fails: the example is not an input of this model
            shapes = ", ".join(f"{tuple(x.shape)} {x.dtype}" for x in inputs)
            raise InputError(f"example: the model's plain call fails on {shapes}: "
                             f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
                             ) from exc
        trial.status, trial.call = "failed", None
        trial.note = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"


def _skip(trial: Trial, model: Any, label: str, trials: list[Trial], left: float,
          compile: bool | None, first: bool) -> str:
    """Why this path is not tried ('' to try it)."""
    if first:
        return ""
    if trial.path.compiles:
        if compile is False:
            return "a compiled path: compile=False"
        if compile is None:
            need = predicted_compile_s(trial.path, model, label, trials)
            if need > left:
                return (f"a compiled path: its compile is predicted at {need:.0f} s and "
                        f"{max(left, 0):.0f} s of the budget were left (compile=True tries it)")
        return ""
    return "" if left > 0 else "the budget was spent before it was tried"


def _rounds(trials: list[Trial], inputs: tuple[Any, ...], deadline: float, update: Any) -> None:
    live = [t for t in trials if t.status == "ok"]
    for r in range(MAX_ROUNDS if live else 0):
        cost = sum(t.calls * t.estimate_s for t in live)
        if r and time.perf_counter() + cost > deadline:
            break
        if r >= ROUNDS and not _close_call(live):
            break
        update(f"timing, round {r + 1}")
        for trial in live[r % len(live):] + live[:r % len(live)]:
            begin = time.perf_counter()
            for _ in range(trial.calls):
                sync(trial.call(*inputs))
            trial.samples.append((time.perf_counter() - begin) / trial.calls)
        update(advance=1)
        if r >= 2:
            best = min(t.median_s for t in live)
            for t in [t for t in live if min(t.samples) > PRUNE * best]:
                t.note = f"dropped after {r + 1} rounds: over {PRUNE:.1f}x the best"
                live.remove(t)


def scores(timed: list[Trial]) -> dict[str, float]:
    """Path -> median over rounds of its sample / the leader's sample in the same round.

    The leader is the path with the lowest median (score 1.0). A trial's samples are indexed by
    round from the first round on (a dropped path just stops early), so `zip` pairs them.
    """
    leader = min(timed, key=lambda t: t.median_s)
    return {t.path.name: statistics.median([a / b for a, b in zip(t.samples, leader.samples)])
            if t is not leader else 1.0 for t in timed}


def _close_call(live: list[Trial]) -> bool:
    """Are the two best within `CLOSE` of each other, paired (more rounds would tell)?"""
    ranked = sorted(scores(live).values())
    return len(ranked) > 1 and ranked[1] <= ranked[0] * (1 + CLOSE)


def timed(trials: list[Trial]) -> list[Trial]:
    """The trials that ran and have samples: the ones `scores` and `choose` rank."""
    return [t for t in trials if t.status == "ok" and t.samples]


def choose(trials: list[Trial]) -> Trial | None:
    ranked = timed(trials)
    if not ranked:
        return None
    score = scores(ranked)
    best = min(score.values())
    return next(t for t in ranked if score[t.path.name] <= best * (1 + TIE))
