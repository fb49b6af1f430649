"""One benchmark job, run in its own process: `python -m benchmarks.worker '<job as JSON>'`.

A timing job is one model in one backend: nnzoo's build and the references of that backend (or
the matrix-multiply probe), and the list of measurements to take. For each measurement every
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
import sys
import time
import traceback
from typing import Any

import numpy as np

from benchmarks import paths
from benchmarks.measure import (
    calls_per_repeat,
    peak_memory,
    summarize,
    time_call,
    timed,
    warm,
)

MARK = "@@bench "
MATMUL_N = 2048


def emit(event: str, **data: Any) -> None:
    print(MARK + json.dumps({"event": event, **data}), flush=True)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"


def import_backend(backend: str, threads: int) -> dict[str, Any]:
    """Import the framework (timed), set its thread count, return its versions."""
    start = time.perf_counter()
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        versions = {"torch": torch.__version__}
    else:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import keras
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        versions = {"tensorflow": tf.__version__, "keras": keras.__version__}
    return {"import_s": time.perf_counter() - start, "versions": versions, "threads": threads}


def matmul_rate(backend: str, job: dict[str, Any]) -> dict[str, Any]:
    """Sustained fp32 GFLOP/s of one square matrix product (2 n^3 FLOPs)."""
    n = MATMUL_N
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    if backend == "torch":
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fn = lambda: torch.mm(ta, tb)  # noqa: E731
    else:
        import tensorflow as tf

        ta, tb = tf.constant(a), tf.constant(b)
        fn = lambda: tf.linalg.matmul(ta, tb)  # noqa: E731
    t = time_call(fn, warmup=job["warmup"], repeats=job["repeats"],
                  min_repeat_s=max(0.5, job["min_repeat_s"]), sync=paths.sync)
    flops = 2 * n**3
    return {"kind": "matmul", "path": f"{n}x{n}", "batch": None, "flops": flops,
            **t.to_dict(), "gflops_per_s": flops / t.median_s / 1e9}


def example(name: str, backend: str, batch: int) -> np.ndarray:
    """The input of one call, in the backend's native layout (NCHW torch, NHWC keras)."""
    import nnzoo
    from nnzoo.layout import to_keras

    spec = nnzoo.get_spec(name)
    x = spec.example_input(batch, seed=0)
    return to_keras(x, spec.input_kind) if backend == "keras" else x


def count_flops(impl: str, name: str, backend: str, model: Any) -> int | None:
    """FLOPs of one example's forward pass, where this job is the one to count them.

    nnzoo's count is taken once, in the PyTorch job; references that implement the same network
    share it (see `benchmarks.flops`); keras.applications' ResNet (v1) is counted on its graph.
    """
    from benchmarks import flops

    if impl == "nnzoo" and backend == "torch":
        return flops.network_flops(name)
    if impl == "keras.applications":
        return flops.keras_flops(model, example(name, backend, 1))
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
            subjects.preload(impl, job["model"], job["backend"])
            load_s = time.perf_counter() - start
            with peak_memory() as peak:
                start = time.perf_counter()
                model = subjects.build(impl, job["model"], job["backend"])
                build_s = time.perf_counter() - start
            emit("built", impl=impl, build_s=build_s, load_s=load_s, build_peak_mib=peak.extra_mib,
                 params=count_params(model).total,
                 flops_per_example=count_flops(impl, job["model"], job["backend"], model))
            models[impl] = model
        except Exception as exc:  # without its model, this implementation is out of the job
            emit("fatal", impl=impl, error=_error(exc), trace=traceback.format_exc(limit=4))
    return models


def prepare(model: Any, backend: str, item: dict[str, Any], x: np.ndarray) -> Any:
    """The zero-argument callable of one measurement."""
    if item["kind"] == "onnx":  # the artifact's size goes into the item, and so into its row
        fn, item["artifact_bytes"] = paths.onnx_infer(model, x, item["threads"])
        return fn
    if item["kind"] == "infer":
        return (paths.torch_infer if backend == "torch" else paths.keras_infer)(
            model, x, item["path"])
    out = (paths.torch_output if backend == "torch" else paths.keras_output)(model, x)
    target = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    return (paths.torch_train if backend == "torch" else paths.keras_train)(
        model, x, target, item["path"])


def measure(models: dict[str, Any], job: dict[str, Any], item: dict[str, Any]
            ) -> dict[str, dict[str, Any]]:
    """One measurement for every implementation, repeats interleaved; impl -> row."""
    backend = job["backend"]
    x = example(job["model"], backend, item["batch"])
    if item["path"] == "compile":
        import torch

        torch._dynamo.reset()  # static shapes for this batch size, compiled afresh
    rows: dict[str, dict[str, Any]] = {}
    ready: dict[str, tuple[Any, int]] = {}
    for impl, model in models.items():
        try:
            if job.get("memory"):  # a memory job: one implementation, its first calls only
                with peak_memory() as peak:
                    fn = prepare(model, backend, item, x)
                    warm(fn, job["warmup"], paths.sync)
                rows[impl] = {"peak_mib": peak.extra_mib}
                continue
            fn = prepare(model, backend, item, x)
            first, last = warm(fn, job["warmup"], paths.sync)
            rows[impl] = {"first_call_s": first}
            ready[impl] = (fn, calls_per_repeat(last, job["min_repeat_s"]))
        except Exception as exc:  # one failed path does not stop the others
            rows[impl] = {"error": _error(exc)}
    if item["path"] == "compile":  # one more untimed round, interleaved: a compiled model may
        for fn, _ in ready.values():  # recompile once after its neighbours have compiled
            paths.sync(fn())
    samples: dict[str, list[float]] = {impl: [] for impl in ready}
    order = list(ready)
    for r in range(job["repeats"] if order else 0):
        for impl in order[r % len(order):] + order[:r % len(order)]:
            if impl not in samples:
                continue
            fn, calls = ready[impl]
            try:
                samples[impl].append(timed(fn, calls, paths.sync))
            except Exception as exc:
                rows[impl] = {"error": _error(exc)}
                del samples[impl]
    for impl, s in samples.items():
        t = summarize(s, ready[impl][1], rows[impl]["first_call_s"])
        rows[impl].update(t.to_dict())
    return {impl: {**item, **row} for impl, row in rows.items()}


def run_job(job: dict[str, Any]) -> int:
    setup = import_backend(job["backend"], job["threads"])
    emit("setup", **setup)
    if job["model"] == "matmul":
        emit("row", impl="matmul", **matmul_rate(job["backend"], job))
        return 0
    models = build_all(job)
    for item in job["measure"]:
        for impl, row in measure(models, job, item).items():
            emit("row", impl=impl, **row)
    return 0


if __name__ == "__main__":
    sys.exit(run_job(json.loads(sys.argv[1])))
