"""Data-parallel training of a Keras build on Keras's JAX backend: `keras.distribution.DataParallel`
over the host's devices, nnzoo's `Trainer` inside its scope, each global batch sharded along the
batch axis. `nnzoo/torch_impl/distributed.py` is the twin; `nnzoo/keras_worker.py` is the process
that uses this (it needs the weight converter, which a build must not import).

On JAX, data parallelism is one program over the global batch, partitioned by XLA: the weights
are replicated, the batch is split across the devices, and every reduction over the batch (the
loss's mean, the gradients' sum, batch norm's mean and variance) becomes a cross-device
all-reduce. So batch-norm statistics are the global batch's without any synchronized layer.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from nnzoo.errors import BackendError, NnzooError
from nnzoo.keras_impl.training import Trainer


def data_parallel(devices: int) -> Any:
    """`keras.distribution.DataParallel` over the first `devices` CPU devices of this JAX process
    (XLA_FLAGS=--xla_force_host_platform_device_count=N, set before JAX starts, makes N)."""
    if keras.backend.backend() != "jax":
        raise BackendError(f"keras/{keras.backend.backend()}", ["keras/jax"])
    import jax

    found = jax.devices("cpu")
    if len(found) < devices:
        raise NnzooError(f"JAX sees {len(found)} CPU device(s), the run needs {devices}: set "
                         "XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts")
    return keras.distribution.DataParallel(devices=found[:devices])


class ShardedTrainer(Trainer):
    """nnzoo's Keras `Trainer`, its batches laid out by a distribution (split on the batch axis).
    Build the model and this trainer inside `distribution.scope()`, and step there."""

    def __init__(self, distribution: Any, *args: Any, **kwargs: Any) -> None:
        self.distribution = distribution
        super().__init__(*args, **kwargs)

    def tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        kx, ky = super().tensors(x, y)
        return tuple(keras.distribution.distribute_tensor(
            t, self.distribution.get_data_layout(tuple(t.shape))) for t in (kx, ky))

    def split(self, x: np.ndarray, y: np.ndarray) -> int:
        """Over how many devices a batch is split (1: replicated, not data-parallel)."""
        tx, _ = self.tensors(x, y)
        return 1 if tx.sharding.is_fully_replicated else len(tx.sharding.device_set)
