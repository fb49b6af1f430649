"""Data-parallel training on the frameworks' own engines, checked against one process.

`data_parallel_parity` trains each model K steps on global batches of B examples twice: in one
process on the whole batch, and data-parallel -- PyTorch `DistributedDataParallel` (or FSDP's
`fully_shard`) over gloo in `world` processes of B / world examples each; Keras's
`DataParallel` over `world` JAX host devices, or `MirroredStrategy` over `world` TensorFlow
logical CPUs -- and reports the largest difference over every weight and batch-norm statistic
against the parity bound of `nnzoo.parity`, and between the PyTorch and the Keras run. With equal
shards and mean-reduced losses the workers' averaged gradient is the global batch's (per pixel
too: every worker averages over the same number of pixels), so what silently changes is batch
norm: per worker unless synchronized (`sync_bn`). `train_data_parallel` is `nnzoo train`.

The workers are separate processes (`nnzoo.launch`: torchrun's environment, a free port picked at
launch), watched and stopped: a worker that cannot start or crashes ends the run with a
`DistributedError` that names it, and no worker outlives the call. Frameworks are imported by the
functions that need them, and by the workers.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnzoo.errors import NnzooError, SpecError
from nnzoo.launch import Workers, check_port, free_port
from nnzoo.parity import ATOL, bound
from nnzoo.registry import resolve
from nnzoo.runtime import load_results
from nnzoo.specs.base import Spec
from nnzoo.specs.training import deterministic, loss_spec, optimizer_spec

ENGINES = {"torch": "nnzoo.torch_impl.distributed", "keras": "nnzoo.keras_worker"}


# ---- the comparison -----------------------------------------------------------------------------
@dataclass
class CaseResult:
    """One model trained data-parallel and in one process: the largest difference over every
    weight and batch-norm statistic after the last step (`worst`: its key; `param_diff`: over
    the trainable parameters only), the weights' scale,
    the global batch's loss before each step in both runs, and how far the replicas ended apart
    (rank 0 against the others; batch-norm statistics differ unless synchronized)."""

    compared: str
    name: str
    family: str
    sync_bn: bool
    batchnorm: bool
    weight_diff: float
    param_diff: float
    scale: float
    worst: str
    replica_diff: float
    loss_single: list[float]
    loss_parallel: list[float]

    @property
    def bound(self) -> float:
        return bound(self.scale, ATOL)

    @property
    def loss_diff(self) -> float:
        return max((abs(a - b) for a, b in zip(self.loss_single, self.loss_parallel)), default=0.0)

    @property
    def ok(self) -> bool:
        """Within the parity bound (weights, and each step's loss)."""
        return (self.weight_diff <= self.bound
                and all(abs(a - b) <= bound(abs(a)) for a, b in
                        zip(self.loss_single, self.loss_parallel)))

    @property
    def expected_equal(self) -> bool:
        """Whether one process's result is promised: always, except for unsynchronized BN."""
        return self.sync_bn or not self.batchnorm


@dataclass
class DataParallelReport:
    """What `data_parallel_parity` measured; `.ok` is the verdict (every case expected to equal
    one process does), `str()` the table."""

    engine: str
    world: int
    steps: int
    batch: int
    dtype: str
    optimizer: str
    cases: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(c.ok for c in self.cases if c.expected_equal)

    def case(self, name: str, *, sync_bn: bool = True, compared: str = "") -> CaseResult:
        """The case of model `name` (its family, for a spec) whose comparison starts with
        `compared`."""
        return next(c for c in self.cases if c.name == name and c.sync_bn == sync_bn
                    and c.compared.startswith(compared))

    def __str__(self) -> str:
        lines = [f"{self.engine}, {self.world} workers x {self.batch // self.world} examples vs "
                 f"one process x {self.batch}, {self.steps} steps of {self.optimizer}, "
                 f"{self.dtype}: {'OK' if self.ok else 'FAIL'} ({self.seconds:.1f} s)",
                 f"    {'model':<12} {'BN':<9} {'max|dw|':>9} {'bound':>9} {'params':>9} "
                 f"{'max|dloss|':>10} {'replicas':>9}  worst"]
        for compared in dict.fromkeys(c.compared for c in self.cases):
            lines.append(f"  {compared}:")
            lines += [self._row(c) for c in self.cases if c.compared == compared]
        return "\n".join(lines)

    @staticmethod
    def _row(c: CaseResult) -> str:
        bn = ("sync" if c.sync_bn else "per-rank") if c.batchnorm else "-"
        if c.batchnorm and c.compared.startswith(KERAS_DP):
            bn = "global"  # one program over the global batch
        flag = "" if c.ok else ("  x" if c.expected_equal else "  (measured)")
        return (f"    {c.name:<12} {bn:<9} {c.weight_diff:>9.1e} {c.bound:>9.1e} "
                f"{c.param_diff:>9.1e} {c.loss_diff:>10.1e} {c.replica_diff:>9.1e}  "
                f"{c.worst}{flag}")

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "world": self.world, "steps": self.steps,
                "batch": self.batch, "dtype": self.dtype, "optimizer": self.optimizer,
                "ok": self.ok, "seconds": round(self.seconds, 3),
                "cases": [{"compared": c.compared, "name": c.name, "family": c.family, "sync_bn": c.sync_bn,
                           "batchnorm": c.batchnorm, "weight_diff": c.weight_diff,
                           "param_diff": c.param_diff,
                           "scale": c.scale, "bound": c.bound, "worst": c.worst,
                           "replica_diff": c.replica_diff, "loss_single": c.loss_single,
                           "loss_parallel": c.loss_parallel, "ok": c.ok} for c in self.cases]}


def _positive(name: str, value: object, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SpecError(name, value, f"must be an integer >= {minimum}")
    return value


def _diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, str]:
    """max |a - b| over the keys of `a` and the key where it is. Every key must be in `b` but
    batch norm's step counter, which Keras does not keep."""
    missing = [k for k in a if k not in b and not k.endswith("num_batches_tracked")]
    if missing:
        raise NnzooError(f"the runs' weights differ in their keys: {missing[:5]} missing")
    diffs = {k: float(np.max(np.abs(a[k].astype(np.float64) - b[k]), initial=0.0))
             for k in a if k in b}
    worst = max(diffs, key=diffs.__getitem__)
    return diffs[worst], worst


def make_job(models: Sequence[str | Spec], *, world: int, steps: int, batch: int,
             optimizer: Any, sync_bn: bool | Sequence[bool], seed: int, dtype: str,
             timeout: float, torch_engines: Sequence[str] = ("ddp",), stochastic: bool = False,
             ) -> tuple[dict[str, Any], list[tuple[str, Spec]]]:
    """The workers' job (JSON-ready) after checking every argument, and each case's (name,
    spec). Cases: every model once per PyTorch engine ("ddp", "fsdp") and value of `sync_bn`.
    Stochastic layers are off (a comparison) unless `stochastic` (a training run)."""
    if (isinstance(torch_engines, str) or not torch_engines
            or not set(torch_engines) <= set(TORCH_ENGINES)):
        raise SpecError("torch_engines", torch_engines,
                        f"a non-empty tuple of {', '.join(map(repr, TORCH_ENGINES))}")
    _positive("world", world, 2)
    _positive("steps", steps)
    _positive("batch", batch)
    if batch % world:
        raise SpecError("batch", batch, f"must be a multiple of world={world}: each worker takes "
                        "batch / world examples, and only equal shards make the mean of the "
                        "workers' mean losses the global batch's mean")
    if dtype not in ("float64", "float32"):
        raise SpecError("dtype", dtype, "one of float64, float32")
    if not isinstance(timeout, int | float) or not timeout > 0:
        raise SpecError("timeout", timeout, "must be a number of seconds > 0")
    modes = (sync_bn,) if isinstance(sync_bn, bool) else tuple(sync_bn)
    if not modes or not all(isinstance(m, bool) for m in modes):
        raise SpecError("sync_bn", sync_bn, "must be True, False or a tuple of them")
    if isinstance(models, str | Spec) or not models:
        raise SpecError("models", models, "must be a non-empty list of model names or specs")
    opt = optimizer_spec(optimizer)
    named = [(m if isinstance(m, str) else m.family,
              resolve(m) if stochastic else deterministic(resolve(m))) for m in models]
    cases, labels = [], []
    for engine in dict.fromkeys(torch_engines):
        for mode in modes:
            for name, spec in named:
                cases.append({"spec": spec.to_dict(), "loss": loss_spec(None, spec).to_dict(),
                              "sync_bn": mode, "label": name, "engine": engine})
                labels.append((name, spec))
    job = {"cases": cases, "optimizer": opt.to_dict(), "steps": steps, "batch": batch, "world": world,
           "seed": seed, "dtype": dtype, "timeout": timeout}
    return job, labels


@contextlib.contextmanager
def _workers(engine: str, job: dict[str, Any], world: int, port: int | None,
             timeout: float, **kwargs: Any) -> Iterator[Workers]:
    port = free_port() if port is None else check_port(port)
    with Workers(ENGINES[engine], job, world=world, port=port, timeout=timeout, **kwargs) as w:
        yield w


def jax_devices_env(devices: int) -> dict[str, str]:
    """The environment of a Keras process on JAX with `devices` host CPU devices (XLA reads the
    flag once, when JAX starts: hence a process of its own)."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    return {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])}


def _compare(compared: str, name: str, spec: Spec, sync_bn: bool, reference: dict[str, Any],
             runs: list[dict[str, Any]]) -> CaseResult:
    """`runs[0]` against `reference`; the other runs (replicas) against `runs[0]`."""
    diff, worst = _diff(reference["state"], runs[0]["state"])
    params = _diff({k: reference["state"][k] for k in reference["params"]}, runs[0]["state"])[0]
    replica = max((_diff(runs[0]["state"], r["state"])[0] for r in runs[1:]), default=0.0)
    scale = max(float(np.max(np.abs(v), initial=0.0)) for v in reference["state"].values())
    return CaseResult(compared, name, spec.family, sync_bn, reference["batchnorm"], diff, params,
                      scale, worst, replica, reference["losses"], runs[0]["losses"])


TORCH_DDP = "PyTorch DDP"
#: PyTorch's engines -> their names in the report
TORCH_ENGINES = {"ddp": TORCH_DDP, "fsdp": "PyTorch FSDP"}
#: Keras's data-parallel engine per Keras backend it runs on here
KERAS_ENGINES = {"jax": "Keras DataParallel (JAX)", "tensorflow": "Keras MirroredStrategy (TF)"}
KERAS_DP = KERAS_ENGINES["jax"]


def _require_packages(backend: str, keras_backend: str | None = None) -> None:
    """Refuse, before any worker starts, an engine whose packages are missing here: the workers
    need torch (every Keras worker starts from the seeded PyTorch build), and Keras with its
    backend's packages."""
    from nnzoo import backends
    from nnzoo.backends import BACKENDS, KERAS_BACKENDS
    from nnzoo.errors import BackendNotInstalledError

    wanted = [("torch", p, BACKENDS["torch"][1]) for p in BACKENDS["torch"][0]]
    if keras_backend is not None:
        wanted += [("keras", p, BACKENDS["keras"][1]) for p in BACKENDS["keras"][0]]
        needs, extra = KERAS_BACKENDS[keras_backend]
        wanted += [(f"keras/{keras_backend}", p, extra) for p in needs]
    for name, package, extra in wanted:
        if not backends._installed(package):
            raise BackendNotInstalledError(name, package, extra)


def keras_env(keras_backend: str, devices: int) -> dict[str, str]:
    """The environment of a Keras worker on `keras_backend` with `devices` devices."""
    if keras_backend == "jax":
        return jax_devices_env(devices)
    return {"KERAS_BACKEND": keras_backend}


def data_parallel_parity(models: Sequence[str | Spec], *, backend: str = "torch", world: int = 2,
                         steps: int = 3, batch: int = 4, optimizer: Any = "sgd",
                         sync_bn: bool | Sequence[bool] = True, seed: int = 0,
                         dtype: str = "float64", port: int | None = None,
                         timeout: float = 300.0, keras_backend: str = "jax",
                         torch_engines: Sequence[str] = ("ddp",), keras_processes: int = 1,
                         _crash_rank: int | None = None) -> DataParallelReport:
    """Train every model `steps` steps on global batches of `batch` both in one process and
    data-parallel over `world` workers (one launch for all of them), from the same seeded
    weights on the same seeded batches, stochastic layers off; report the differences.

    backend "torch": `DistributedDataParallel` over gloo in `world` CPU processes against one
    process. "keras": in a Keras process of its own on `keras_backend`, against one device
    (from the seeded PyTorch build's weights): on "jax", `keras.distribution.DataParallel` over
    `world` host devices; on "tensorflow", `tf.distribute.MirroredStrategy` over `world` logical
    CPU devices. "both": the PyTorch and the Keras launch at once, and the PyTorch DDP run
    against the Keras data-parallel run too. `sync_bn`: batch norm synchronized across the
    workers (True: nnzoo's SyncBatchNorm on PyTorch, Keras's `synchronized=True` on TF), per
    worker (False), or a tuple of both to measure each; on JAX the statistics are always the
    global batch's (its cases run once, synchronized). `torch_engines`: ("ddp",), or with
    "fsdp" FSDP's `fully_shard` too (parameters sharded across the processes), in the same
    launch; the Keras run is compared with DDP. `keras_processes` (JAX only): the Keras run is
    that many JAX processes joined by `keras.distribution.initialize`, `world / keras_processes`
    host devices each -- one program over every process's devices, as across machines.
    `port`: PyTorch's rendezvous port (None: a free one). `optimizer` as in `train_parity`.
    """
    if backend not in ("torch", "keras", "both"):
        raise SpecError("backend", backend, "one of 'torch', 'keras', 'both'")
    if keras_backend not in KERAS_ENGINES:
        raise SpecError("keras_backend", keras_backend, f"one of {', '.join(KERAS_ENGINES)}")
    keras_engine = KERAS_ENGINES[keras_backend]
    _positive("keras_processes", keras_processes)
    if keras_processes > 1 and (keras_backend != "jax" or world % keras_processes):
        raise SpecError("keras_processes", keras_processes, "1, or on keras_backend='jax' a "
                        f"divisor of world={world} (each process takes world / keras_processes "
                        "devices; TensorFlow's multi-worker strategy is not wired)")
    if keras_processes > 1:
        keras_engine = keras_engine.replace("(JAX)", f"(JAX, {keras_processes} processes)")
    _require_packages(backend, keras_backend if backend != "torch" else None)
    job, labels = make_job(models, world=world, steps=steps, batch=batch, optimizer=optimizer,
                           sync_bn=sync_bn, seed=seed, dtype=dtype, timeout=timeout,
                           torch_engines=torch_engines)
    if _crash_rank is not None:
        job["crash_rank"] = _crash_rank
    on_torch, on_keras = backend in ("torch", "both"), backend in ("keras", "both")
    first = job["cases"][0]["engine"]  # Keras runs each model and mode once
    keras_cases = [i for i, c in enumerate(job["cases"]) if on_keras and c["engine"] == first
                   and (c["sync_bn"] or keras_backend != "jax")]
    if on_keras and not keras_cases:
        raise SpecError("sync_bn", sync_bn, "must include True for the Keras run (on JAX the "
                        "statistics are always the global batch's)")
    keras_job = {**job, "cases": [job["cases"][i] for i in keras_cases]}
    start = time.perf_counter()
    torch_names = " and ".join(TORCH_ENGINES[e] for e in dict.fromkeys(torch_engines))
    engines = [e for e, on in ((torch_names + " (gloo)", on_torch), (keras_engine, on_keras)) if on]
    report = DataParallelReport(" and ".join(engines), world, steps, batch, dtype,
                                optimizer_spec(optimizer).kind)
    singles: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        if on_keras:  # first: the Keras process takes longest
            keras_w = stack.enter_context(Workers(
                ENGINES["keras"], keras_job, world=keras_processes,
                port=free_port() if keras_processes > 1 else 0, timeout=timeout,
                env=keras_env(keras_backend, world // keras_processes)))
        if on_torch:
            from nnzoo.torch_impl.distributed import train_case

            torch_w = stack.enter_context(_workers("torch", job, world, port, timeout))
            for case in job["cases"]:  # the one-process runs, while the workers start
                key = json.dumps(case["spec"], sort_keys=True)
                if key not in singles:
                    singles[key] = train_case(case, job)
            torch_out = [load_results(p, len(job["cases"])) for p in torch_w.wait()]
        if on_keras:
            keras_out = [load_results(p, 2 * len(keras_cases)) for p in keras_w.wait()]
    for i, (case, (name, spec)) in enumerate(zip(job["cases"], labels)):
        if on_torch:
            single = singles[json.dumps(case["spec"], sort_keys=True)]
            report.cases.append(_compare(f"{TORCH_ENGINES[case['engine']]} vs one process",
                                         name, spec,
                                         case["sync_bn"], single, [out[i] for out in torch_out]))
        if i in keras_cases:
            j = keras_cases.index(i)
            processes = [out[j] for out in keras_out]  # each JAX process's copy
            parallel, one = processes[0], keras_out[0][j + len(keras_cases)]
            report.cases.append(_compare(f"{keras_engine} vs one device", name, spec,
                                         case["sync_bn"], one, processes))
            if on_torch:
                report.cases.append(_compare(f"{TORCH_ENGINES[first]} vs {keras_engine}", name, spec,
                                             case["sync_bn"],
                                             {**one, "state": torch_out[0][i]["state"],
                                              "losses": torch_out[0][i]["losses"]}, [parallel]))
    report.seconds = time.perf_counter() - start
    return report


# ---- a training run -----------------------------------------------------------------------------
@dataclass
class TrainRun:
    """What `train_data_parallel` did: the engine, the global batch's loss before each step, and
    the final weights (PyTorch keys and layouts; rank 0's)."""

    name: str
    engine: str
    world: int
    losses: list[float]
    state: dict[str, np.ndarray] = field(repr=False)
    seconds: float


def engine_for(backend: str) -> str:
    """The data-parallel engine `backend` runs on here, or a `SpecError` naming what would."""
    from nnzoo import backends

    if backend == "torch":
        return TORCH_DDP + " (gloo)"
    if backend != "keras":
        raise SpecError("backend", backend, "one of 'torch', 'keras'")
    active = backends.keras_backend()
    if active not in KERAS_ENGINES:
        raise SpecError("backend", f"keras/{active}", "keras/jax (keras.distribution) or "
                        "keras/tensorflow (tf.distribute): Keras has no data-parallel engine on "
                        "its PyTorch backend; set KERAS_BACKEND=jax or tensorflow")
    return KERAS_ENGINES[active]


def training_job(name_or_spec: str | Spec, *, world: int, steps: int = 10, batch: int = 8,
                 optimizer: Any = "sgd", seed: int = 0, dtype: str = "float32",
                 timeout: float = 3600.0, progress: bool = True,
                 **overrides: Any) -> dict[str, Any]:
    """The workers' job for training one model data-parallel (checked; JSON-ready): what
    `train_data_parallel` hands its workers, and what `torchrun ... -m
    nnzoo.torch_impl.distributed JOB.json OUTDIR` reads on each machine of a larger run."""
    spec = resolve(name_or_spec, **overrides)
    job, _ = make_job([spec], world=world, steps=steps, batch=batch, optimizer=optimizer,
                      sync_bn=True, seed=seed, dtype=dtype, timeout=timeout, stochastic=True)
    job.update(progress=progress, parallel_only=True)
    job["cases"][0]["label"] = name_or_spec if isinstance(name_or_spec, str) else spec.family
    return job


def train_data_parallel(name_or_spec: str | Spec, *, backend: str = "torch", world: int = 2,
                        steps: int = 10, batch: int = 8, optimizer: Any = "sgd", seed: int = 0,
                        dtype: str = "float32", port: int | None = None,
                        timeout: float = 3600.0, progress: bool = True,
                        **overrides: Any) -> TrainRun:
    """Train one model data-parallel with the framework's own engine, on one machine: PyTorch
    DDP over gloo in `world` processes, or Keras on the active Keras backend -- DataParallel
    over `world` host devices of a JAX process, MirroredStrategy over `world` logical CPU
    devices on TensorFlow -- batch norm synchronized; seeded synthetic batches of `batch` examples (each
    worker takes batch / world). Rank 0 alone prints each step's loss (`progress`), after a
    line saying what runs."""
    engine = engine_for(backend)
    job = training_job(name_or_spec, world=world, steps=steps, batch=batch, optimizer=optimizer,
                       seed=seed, dtype=dtype, timeout=timeout, progress=progress, **overrides)
    from nnzoo import backends

    _require_packages(backend, backends.keras_backend() if backend == "keras" else None)
    name = job["cases"][0]["label"]
    if port is not None:
        check_port(port)
    if progress:
        print(f"training {name} data-parallel: {engine}, {world} workers x {batch // world} "
              f"examples, {steps} steps of {optimizer_spec(optimizer).kind} ({dtype})")
    start = time.perf_counter()
    sys.stdout.flush()  # ours before the workers' lines
    if backend == "torch":
        with _workers("torch", job, world, port, timeout, show_rank0=progress) as w:
            result = load_results(w.wait()[0], 1)[0]
    else:
        with Workers(ENGINES["keras"], job, world=1, port=0, timeout=timeout,
                     env=keras_env(backends.keras_backend(), world), show_rank0=progress) as w:
            result = load_results(w.wait()[0], 1)[0]
    return TrainRun(name, engine, world, result["losses"], result["state"],
                    time.perf_counter() - start)
