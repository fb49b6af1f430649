"""One benchmark job, run in its own process: `python -m benchmarks.worker '<job as JSON>'`.

A timing job is one model in one framework (PyTorch, or Keras on one of its backends): nnzoo's
build and the references of that framework (or the matrix-multiply probe), and the list of
measurements to take. For each measurement every
implementation is prepared and warmed up in turn, and then the timed repeats are interleaved
across implementations in rotating order: the ratios nnzoo / reference are what the report
claims, and a neighbour's load that comes and goes during the job weighs on both sides alike.

A memory job (`"memory": true`) is one implementation alone in a fresh process: its build, one
inference batch on the fast path and one training step, each with its peak resident memory.
Alone, because allocators keep freed memory for reuse: in a shared process the second model
would borrow what the first one left behind.

Each result is printed at once as a line `@@bench {json}` on stdout, which the runner reads to
move its progress bar; everything the frameworks print goes to stderr. A failed measurement is
reported and the job goes on.

Why a process per model and backend: PyTorch's OpenMP threads and TensorFlow's thread pool
would otherwise share the cores.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import traceback
from typing import Any

import numpy as np

from benchmarks import paths
from benchmarks.measure import (
    calls_per_repeat,
    median_interval,
    peak_memory,
    summarize,
    time_call,
    timed,
    warm,
)
from benchmarks.targets import T_OPTIMIZE, THRESHOLDS

MARK = "@@bench "
MATMUL_N = 2048
#: Timed rounds of the optimize-vs-best pair, whatever the run's repeats: the verdict is the
#: median of the paired ratios, whose spread on a shared 2-core machine is a few percent where
#: the ratio of two 3-repeat medians strayed by up to 10% (bench-quick, 2026-12-03). At least
#: PAIRED_REPEATS rounds; then more, while the 95% interval of that median still holds the
#: target's threshold (one side or the other is not yet shown), up to PAIRED_MAX rounds or
#: PAIRED_BUDGET_S seconds of them. Why: in bench-quick of 2026-12-05, rounds ranged 0.77-1.57x
#: under a load that moved, and the median of 11 put the same XLA program 1.10x behind itself;
#: on a quiet machine the rounds agree within 3% and 11 rounds decide.
PAIRED_REPEATS = 11
PAIRED_MAX = 61
PAIRED_BUDGET_S = 60.0


def emit(event: str, **data: Any) -> None:
    print(MARK + json.dumps({"event": event, **data}), flush=True)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"


def import_backend(label: str, threads: int) -> dict[str, Any]:
    """Import the framework of `label` (timed), set its thread count, return its versions.

    Keras's backend is the job's (`KERAS_BACKEND`, set by the runner). JAX takes no thread
    count after start-up: XLA's CPU runtime uses every core this process may run on.
    """
    start = time.perf_counter()
    versions: dict[str, str] = {}
    backend = label.split("/", 1)[-1]
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        versions["torch"] = torch.__version__
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        versions["tensorflow"] = tf.__version__
    elif backend == "jax":
        import jax

        versions["jax"] = jax.__version__
    if label != "torch":
        os.environ["KERAS_BACKEND"] = backend
        import keras

        versions["keras"] = keras.__version__
        if keras.backend.backend() != backend:
            raise RuntimeError(f"Keras runs on {keras.backend.backend()}, not {backend}")
    return {"import_s": time.perf_counter() - start, "versions": versions, "threads": threads}


def matmul_rate(label: str, job: dict[str, Any]) -> dict[str, Any]:
    """Sustained fp32 GFLOP/s of one square matrix product (2 n^3 FLOPs), in the label's
    framework (torch.mm, tf.linalg.matmul, jax.numpy.matmul)."""
    n = MATMUL_N
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    backend = label.split("/", 1)[-1]
    if backend == "torch":
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fn = lambda: torch.mm(ta, tb)  # noqa: E731
    elif backend == "jax":
        import jax.numpy as jnp

        ta, tb = jnp.asarray(a), jnp.asarray(b)
        fn = lambda: jnp.matmul(ta, tb)  # noqa: E731
    else:
        import tensorflow as tf

        ta, tb = tf.constant(a), tf.constant(b)
        fn = lambda: tf.linalg.matmul(ta, tb)  # noqa: E731
    t = time_call(fn, warmup=job["warmup"], repeats=job["repeats"],
                  min_repeat_s=max(0.5, job["min_repeat_s"]), sync=paths.sync)
    flops = 2 * n**3
    return {"kind": "matmul", "path": f"{n}x{n}", "batch": None, "flops": flops,
            **t.to_dict(), "gflops_per_s": flops / t.median_s / 1e9}


def example(name: str, label: str, batch: int) -> np.ndarray:
    """The input of one call, in the framework's native layout (NCHW torch, NHWC keras)."""
    import nnzoo
    from nnzoo.layout import to_keras

    spec = nnzoo.get_spec(name)
    x = spec.example_input(batch, seed=0)
    return x if label == "torch" else to_keras(x, spec.input_kind)


def count_flops(impl: str, name: str, label: str, model: Any) -> int | None:
    """FLOPs of one example's forward pass, where this job is the one to count them.

    nnzoo's count is taken once, in the PyTorch job; references that implement the same network
    share it (see `benchmarks.flops`); keras.applications' ResNet (v1) is counted on its graph.
    """
    from benchmarks import flops

    if impl == "nnzoo" and label == "torch":
        return flops.network_flops(name)
    if impl == "keras.applications" and label == "keras/tensorflow":
        return flops.keras_flops(model, example(name, label, 1))
    return None


def build_all(job: dict[str, Any]) -> dict[str, Any]:
    """Build every implementation of the job's model (build time and memory measured).

    The library's model code is imported first (`load_s`), so that the build is construction
    alone: creating and initializing the layers and weights.
    """
    from benchmarks import subjects
    from nnzoo.runtime import count_params

    models = {}
    for impl in job["impls"]:
        try:
            start = time.perf_counter()
            subjects.preload(impl, job["model"], paths.framework(job["backend"]))
            load_s = time.perf_counter() - start
            with peak_memory() as peak:
                start = time.perf_counter()
                model = subjects.build(impl, job["model"], paths.framework(job["backend"]))
                build_s = time.perf_counter() - start
            emit("built", impl=impl, build_s=build_s, load_s=load_s, build_peak_mib=peak.extra_mib,
                 params=count_params(model).total,
                 flops_per_example=count_flops(impl, job["model"], job["backend"], model))
            models[impl] = model
        except Exception as exc:  # without its model, this implementation is out of the job
            emit("fatal", impl=impl, error=_error(exc), trace=traceback.format_exc(limit=4))
    return models


def prepare(model: Any, job: dict[str, Any], item: dict[str, Any], x: np.ndarray) -> Any:
    """The zero-argument callable of one measurement."""
    label = job["backend"]
    if item["kind"] == "onnx":  # the artifact's size goes into the item, and so into its row
        fn, item["artifact_bytes"] = paths.onnx_infer(model, x, item["threads"])
        return fn
    if item["kind"] == "infer":
        return paths.infer(model, x, label, item["path"], compile=job.get("optimize_compile"),
                           budget=job.get("optimize_budget", 30.0))
    target = np.random.default_rng(1).standard_normal(paths.output(model, x, label).shape)
    return paths.train(model, x, target.astype(np.float32), label, item["path"])


#: (impl, batch) -> (path, callable, median s): the fastest inference path measured so far in
#: this job, kept ready to be timed again beside `optimize`.
Best = dict[tuple[str, int], tuple[str, Any, float]]


def measure(models: dict[str, Any], job: dict[str, Any], item: dict[str, Any], best: Best
            ) -> dict[str, dict[str, Any]]:
    """One measurement for every implementation, repeats interleaved; impl -> row.

    The `optimize` measurement is nnzoo's alone, and it is interleaved with a second timing of
    the fastest path measured before it in this job at the same batch size (`versus` in its
    row), over `PAIRED_REPEATS` rounds or more (`_undecided`): "optimize vs the best path" is
    the median of the per-round ratios (`versus["paired"]`, with their min and max, its 95%
    interval and the number of rounds), each taken from two repeats run back to back, so that a
    load that changes between rounds cancels.
    """
    x = example(job["model"], job["backend"], item["batch"])
    rows: dict[str, dict[str, Any]] = {}
    ready: dict[str, tuple[Any, int]] = {}
    optimizing = item["path"] == "optimize"
    for impl, model in models.items():
        if optimizing and impl != "nnzoo":
            continue
        try:
            if job.get("memory"):  # a memory job: one implementation, its first calls only
                with peak_memory() as peak:
                    fn = prepare(model, job, item, x)
                    warm(fn, job["warmup"], paths.sync)
                rows[impl] = {"peak_mib": peak.extra_mib}
                continue
            fn = prepare(model, job, item, x)
            first, last = warm(fn, job["warmup"], paths.sync)
            rows[impl] = {"first_call_s": first, **getattr(fn, "info", {})}
            ready[impl] = (fn, calls_per_repeat(last, job["min_repeat_s"]))
        except Exception as exc:  # one failed path does not stop the others
            rows[impl] = {"error": _error(exc)}
    kept = best.get(("nnzoo", item["batch"])) if optimizing else None
    if kept and "nnzoo" in ready:
        try:
            first, last = warm(kept[1], job["warmup"], paths.sync)
            ready["versus"] = (kept[1], calls_per_repeat(last, job["min_repeat_s"]))
            rows["versus"] = {"first_call_s": first}
        except Exception as exc:
            rows["nnzoo"]["versus_error"] = _error(exc)
    if item["path"] in paths.COMPILED:  # one more untimed round, interleaved: a compiled
        for fn, _ in ready.values():  # model may recompile once after its neighbours compiled
            paths.sync(fn())
    samples: dict[str, list[float]] = {impl: [] for impl in ready}
    order = list(ready)
    paired = "versus" in ready
    repeats = max(job["repeats"], PAIRED_REPEATS) if paired else job["repeats"]
    start, r = time.perf_counter(), 0
    while order and (r < repeats or paired and _undecided(samples) and r < PAIRED_MAX
                     and time.perf_counter() - start < PAIRED_BUDGET_S):
        for impl in order[r % len(order):] + order[:r % len(order)]:
            if impl not in samples:
                continue
            fn, calls = ready[impl]
            try:
                samples[impl].append(timed(fn, calls, paths.sync))
            except Exception as exc:
                rows[impl] = {"error": _error(exc)}
                del samples[impl]
        r += 1
    for impl, s in samples.items():
        t = summarize(s, ready[impl][1], rows[impl]["first_call_s"])
        rows[impl].update(t.to_dict())
    versus = rows.pop("versus", None)
    if versus and "median_s" in versus and "median_s" in rows.get("nnzoo", {}):
        ratios = sorted(_ratios(samples))
        rows["nnzoo"]["versus"] = {"path": kept[0], **{k: versus[k] for k in
                                                        ("median_s", "min_s", "max_s")},
                                   "paired": statistics.median(ratios),
                                   "paired_min": ratios[0], "paired_max": ratios[-1],
                                   "paired_ci": list(median_interval(ratios)),
                                   "rounds": len(ratios)}
    if item["kind"] == "infer" and not optimizing and not job.get("memory"):
        for impl, row in rows.items():
            known = best.get((impl, item["batch"]))
            if "median_s" in row and (known is None or row["median_s"] < known[2]):
                best[(impl, item["batch"])] = (item["path"], ready[impl][0], row["median_s"])
    return {impl: {**item, **row} for impl, row in rows.items()}


def _ratios(samples: dict[str, list[float]]) -> list[float]:
    """optimize's time over the best path's, round by round."""
    return [a / b for a, b in zip(samples["nnzoo"], samples["versus"])]


def _undecided(samples: dict[str, list[float]]) -> bool:
    """Does the 95% interval of the median paired ratio still hold the target's threshold?"""
    if "nnzoo" not in samples or "versus" not in samples:  # one of them failed: nothing to pair
        return False
    low, high = median_interval(_ratios(samples))
    return low <= THRESHOLDS[T_OPTIMIZE] <= high


def run_job(job: dict[str, Any]) -> int:
    setup = import_backend(job["backend"], job["threads"])
    emit("setup", **setup)
    if job["model"] == "matmul":
        emit("row", impl="matmul", **matmul_rate(job["backend"], job))
        return 0
    models = build_all(job)
    best: Best = {}
    for item in job["measure"]:
        for impl, row in measure(models, job, item, best).items():
            emit("row", impl=impl, **row)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(json.loads(sys.argv[1])))
