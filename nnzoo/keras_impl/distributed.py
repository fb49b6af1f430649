"""Data-parallel training of a Keras build on Keras's JAX backend: `keras.distribution.DataParallel`
over the host's devices, nnzoo's `Trainer` inside its scope, each global batch sharded along the
batch axis. `nnzoo/torch_impl/distributed.py` is the twin.

On JAX, data parallelism is one program over the global batch, partitioned by XLA: the weights
are replicated, the batch is split across the devices, and every reduction over the batch (the
loss's mean, the gradients' sum, batch norm's mean and variance) becomes a cross-device
all-reduce. So batch-norm statistics are the global batch's without any synchronized layer.

A worker is `python -m nnzoo.keras_impl.distributed JOB.json OUTDIR`, one process driving
`job["world"]` devices. It needs KERAS_BACKEND=jax and, for CPU devices,
XLA_FLAGS=--xla_force_host_platform_device_count=N set before JAX is imported: `nnzoo.distributed`
starts it with both. Each case is trained twice from the same weights (those of the seeded
PyTorch build, so the PyTorch run can be compared too): on one device on the whole batch, and
data-parallel. The results are written as PyTorch-keyed state dicts.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from nnzoo.distributed import save_results
from nnzoo.errors import BackendError, NnzooError


def _cast(a: np.ndarray, dtype: str) -> np.ndarray:
    return a.astype(dtype) if a.dtype.kind == "f" else a


def _sharded_trainer(distribution: Any) -> type:
    """nnzoo's Keras `Trainer`, its batches laid out by `distribution` (split on the batch axis)."""
    import keras

    from nnzoo.keras_impl.training import Trainer

    class ShardedTrainer(Trainer):
        def tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
            kx, ky = super().tensors(x, y)
            return tuple(keras.distribution.distribute_tensor(t, distribution.get_data_layout(
                tuple(t.shape))) for t in (kx, ky))

    return ShardedTrainer


def train_case(case: dict[str, Any], job: dict[str, Any], distribution: Any = None,
               say: Any = None) -> dict[str, Any]:
    """One case, on one device (`distribution` None) or data-parallel under `distribution`, from
    the seeded PyTorch build's weights. Returns the final PyTorch-keyed state dict, the global
    batch's loss before each step, over how many devices the batches were split, the parameters'
    keys and whether the model has batch norm."""
    import contextlib

    from nnzoo import backends
    from nnzoo.conversion import state_dict, transfer_weights
    from nnzoo.keras_impl.training import Trainer
    from nnzoo.registry import spec_from_dict
    from nnzoo.specs.training import LossSpec, optimizer_spec, synthetic_batch

    spec, loss = spec_from_dict(case["spec"]), LossSpec(**case["loss"])
    opt = optimizer_spec(job["optimizer"])
    steps, batch, seed, dtype = job["steps"], job["batch"], job["seed"], job["dtype"]
    x, y = synthetic_batch(spec, loss, batch * steps, seed)
    x, y = _cast(x, dtype), _cast(y, dtype)
    source = backends.build_native(spec, "torch", seed=seed, dtype=dtype)
    scope = distribution.scope() if distribution is not None else contextlib.nullcontext()
    with backends.float64_scope() if dtype == "float64" else contextlib.nullcontext(), scope:
        model = backends.build_native(spec, "keras", seed=seed, dtype=dtype)
        transfer_weights(source, model)
        cls = Trainer if distribution is None else _sharded_trainer(distribution)
        trainer = cls(model, opt, loss, steps=steps)
        losses, split = [], 1
        for k in range(steps):
            xb, yb = x[k * batch:(k + 1) * batch], y[k * batch:(k + 1) * batch]
            if k == 0 and distribution is not None:
                tx, _ = trainer.tensors(xb, yb)
                split = 1 if tx.sharding.is_fully_replicated else len(tx.sharding.device_set)
                if split != job["world"]:
                    raise NnzooError(f"the batch was split over {split} device(s), not "
                                     f"{job['world']}: the run would not be data-parallel")
            losses.append(trainer.step(xb, yb))
            if say is not None:
                say(f"{case['label']}: step {k + 1}/{steps}  loss {losses[-1]:.6f}")
        state = state_dict(model)
    return {"state": state, "losses": losses, "split": split,
            "params": [k for k, _ in source.named_parameters()],
            "batchnorm": any("BatchNorm" in type(m).__name__ for m in source.modules())}


def main(argv: list[str] | None = None) -> int:
    """The worker: every case data-parallel over `job["world"]` devices, then (unless the job is
    a plain training run) on one device; OUTDIR/rank0.npz holds the data-parallel results first.
    Any failure goes to OUTDIR/rank0.error, status 1."""
    job_path, out_dir = (argv if argv is not None else sys.argv[1:])[:2]
    out = Path(out_dir)
    try:
        job = json.loads(Path(job_path).read_text())
        from nnzoo import backends

        if backends.keras_backend() != "jax":
            raise BackendError(f"keras/{backends.keras_backend()}", ["keras/jax"])
        import jax
        import keras

        devices = jax.devices("cpu")
        if len(devices) < job["world"]:
            raise NnzooError(f"JAX sees {len(devices)} CPU device(s), the job needs {job['world']}:"
                             " set XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX "
                             "is imported")
        distribution = keras.distribution.DataParallel(devices=devices[:job["world"]])
        say = (lambda line: print(line, flush=True)) if job.get("progress") else None
        results = [train_case(case, job, distribution, say) for case in job["cases"]]
        if not job.get("parallel_only"):
            results += [train_case(case, job) for case in job["cases"]]
        save_results(out / "rank0.npz", results)
        return 0
    except BaseException:
        (out / "rank0.error").write_text(traceback.format_exc())
        return 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
