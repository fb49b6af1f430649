"""The Keras data-parallel worker: `python -m nnzoo.keras_worker JOB.json OUTDIR`, a JAX process
driving `job["world"]` devices through `nnzoo.keras_impl.distributed` (or a TensorFlow process
driving as many logical CPUs).

On one machine it needs KERAS_BACKEND=jax and XLA_FLAGS=--xla_force_host_platform_device_count=N
set before JAX starts; `nnzoo.distributed` starts it with both. On JAX the job's devices may
span several processes (several machines): each process joins the others through
`keras.distribution.initialize`, configured by Keras's own KERAS_DISTRIBUTION_JOB_ADDRESSES
(the coordinator's HOST:PORT), KERAS_DISTRIBUTION_NUM_PROCESSES and
KERAS_DISTRIBUTION_PROCESS_ID, or, when those are unset, torchrun's MASTER_ADDR:MASTER_PORT,
WORLD_SIZE and RANK (as `nnzoo.launch` sets them). Every process then runs the same program,
each feeding its own devices. Each case starts from the seeded PyTorch build's weights (so the
PyTorch run can be compared too) and is trained data-parallel, then -- unless the job is a plain
training run -- on one device on the whole batch. OUTDIR/rank{P}.npz holds process P's
PyTorch-keyed results, the data-parallel ones first; a failure goes to OUTDIR/rank{P}.error.
Process 0 alone prints progress.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from nnzoo.errors import NnzooError


def _cast(a: np.ndarray, dtype: str) -> np.ndarray:
    return a.astype(dtype) if a.dtype.kind == "f" else a


def train_case(case: dict[str, Any], job: dict[str, Any], distribution: Any = None,
               say: Any = None) -> dict[str, Any]:
    """One case, on one device (`distribution` None) or data-parallel under `distribution`.
    Returns the final PyTorch-keyed state dict, the global batch's loss before each step, over
    how many devices the batches were split, the parameters' keys and whether there is batch
    norm."""
    from nnzoo import backends
    from nnzoo.conversion import state_dict, transfer_weights
    from nnzoo.keras_impl.distributed import MirroredTrainer, ShardedTrainer
    from nnzoo.keras_impl.distributed import synchronize_batchnorm as sync_bn
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
        mirrored = distribution is not None and not hasattr(distribution, "get_data_layout")
        if distribution is None:
            trainer = Trainer(model, opt, loss, steps=steps)
        elif mirrored:  # tf.distribute: each replica its slice; statistics per replica unless
            if case["sync_bn"]:
                sync_bn(model)
            trainer = MirroredTrainer(distribution, model, opt, loss, steps=steps)
        else:
            trainer = ShardedTrainer(distribution, model, opt, loss, steps=steps)
        split = (1 if distribution is None else distribution.num_replicas_in_sync if mirrored
                 else trainer.split(x[:batch], y[:batch]))
        if distribution is not None and split != job["world"]:
            raise NnzooError(f"the batch was split over {split} device(s), not {job['world']}: "
                             "the run would not be data-parallel")
        losses = []
        for k in range(steps):
            losses.append(trainer.step(x[k * batch:(k + 1) * batch], y[k * batch:(k + 1) * batch]))
            if say is not None:
                say(f"{case['label']}: step {k + 1}/{steps}  loss {losses[-1]:.6f}")
        state = state_dict(model)
    return {"state": state, "losses": losses, "split": split,
            "params": [k for k, _ in source.named_parameters()],
            "batchnorm": any("BatchNorm" in type(m).__name__ for m in source.modules())}


def processes() -> tuple[int, int, str]:
    """(this process's id, how many processes, the coordinator's HOST:PORT) from Keras's
    KERAS_DISTRIBUTION_* variables, else torchrun's; (0, 1, "") for a process on its own."""
    env = os.environ
    count = int(env.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or env.get("WORLD_SIZE") or 1)
    if count == 1:
        return 0, 1, ""
    pid = int(env.get("KERAS_DISTRIBUTION_PROCESS_ID") or env.get("RANK") or -1)
    address = env.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") or (
        f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}" if "MASTER_ADDR" in env else "")
    if not 0 <= pid < count or not address:
        raise NnzooError(f"{count} Keras processes, but this one's id ({pid}) or the "
                         "coordinator's address is missing: set KERAS_DISTRIBUTION_PROCESS_ID "
                         "(0..N-1) and KERAS_DISTRIBUTION_JOB_ADDRESSES=HOST:PORT")
    return pid, count, address


def main(argv: list[str] | None = None) -> int:
    job_path, out_dir = (argv if argv is not None else sys.argv[1:])[:2]
    out = Path(out_dir)
    from nnzoo.runtime import exit_with_parent

    exit_with_parent()
    pid = 0
    try:
        pid, count, address = processes()
        job = json.loads(Path(job_path).read_text())
        from nnzoo import backends
        from nnzoo.keras_impl.distributed import data_parallel, join, mirrored
        from nnzoo.runtime import save_results

        if count > 1:
            join(address, count, pid)
        engine = data_parallel if backends.keras_backend() == "jax" else mirrored
        distribution = engine(job["world"])
        say = (lambda line: print(line, flush=True)) if job.get("progress") and pid == 0 else None
        parallel: dict[str, dict[str, Any]] = {}  # without batch norm, sync_bn changes nothing
        single: dict[str, dict[str, Any]] = {}  # and on one device, never
        results = []
        for case in job["cases"]:
            key = json.dumps(case["spec"], sort_keys=True)
            if key not in parallel or parallel[key]["batchnorm"]:
                parallel[key] = train_case(case, job, distribution, say)
            results.append(parallel[key])
        for case in [] if job.get("parallel_only") else job["cases"]:
            key = json.dumps(case["spec"], sort_keys=True)
            if key not in single:
                single[key] = train_case(case, job)
            results.append(single[key])
        save_results(out / f"rank{pid}.npz", results)
        return 0
    except BaseException:
        (out / f"rank{pid}.error").write_text(traceback.format_exc())
        return 1


if __name__ == "__main__":
    sys.exit(main())
