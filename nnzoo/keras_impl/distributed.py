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


def join(address: str, processes: int, process_id: int) -> None:
    """Join this JAX process to the others of a multi-process run (`address`: process 0's
    HOST:PORT, where it coordinates), before anything else uses JAX: then `jax.devices()` lists
    every process's devices, and one `DataParallel` spans them (the torchrun counterpart is
    `torch.distributed.init_process_group`)."""
    if keras.backend.backend() != "jax":
        raise BackendError(f"keras/{keras.backend.backend()}", ["keras/jax"])
    keras.distribution.initialize(job_addresses=address, num_processes=processes,
                                  process_id=process_id)


def data_parallel(devices: int) -> Any:
    """`keras.distribution.DataParallel` over the first `devices` devices of the JAX run: this
    process's, or every joined process's (`join`). On one CPU machine,
    XLA_FLAGS=--xla_force_host_platform_device_count=N, set before JAX starts, makes N."""
    if keras.backend.backend() != "jax":
        raise BackendError(f"keras/{keras.backend.backend()}", ["keras/jax"])
    import jax

    found = jax.devices()
    if len(found) < devices:
        raise NnzooError(f"JAX sees {len(found)} device(s) in {jax.process_count()} process(es), "
                         f"the run needs {devices}: set XLA_FLAGS="
                         "--xla_force_host_platform_device_count=N before JAX starts, or join "
                         "more processes")
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


# ---- TensorFlow: tf.distribute.MirroredStrategy ---------------------------------------------------
def mirrored(devices: int) -> Any:
    """`tf.distribute.MirroredStrategy` over `devices` logical CPU devices, made from the one
    physical CPU; must run before TensorFlow starts its runtime (first op or device listing of
    logical devices), hence in a process of its own."""
    if keras.backend.backend() != "tensorflow":
        raise BackendError(f"keras/{keras.backend.backend()}", ["keras/tensorflow"])
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)])
    except RuntimeError as exc:
        raise NnzooError(f"TensorFlow's devices are fixed once it has started: {exc}") from None
    names = [d.name for d in tf.config.list_logical_devices("CPU")[:devices]]
    return tf.distribute.MirroredStrategy(names)


def synchronize_batchnorm(model: Any) -> Any:
    """Every batch norm of `model` computes the global batch's statistics across the replicas
    of a `tf.distribute` strategy (Keras's `synchronized=True`, TensorFlow only); returns it."""
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
    return model


class MirroredTrainer(Trainer):
    """nnzoo's Keras `Trainer` under a `tf.distribute` strategy: each replica takes its equal
    slice of the global batch, and the update is applied once, mirrored. Keras's optimizer sums
    the replicas' gradients, and Keras's losses already divide their mean by the number of
    replicas under `tf.distribute` (`scale_loss_for_distribution`): the sum is the global
    batch's mean gradient with no scaling here -- dividing again, as `tf.distribute`'s own
    recipe (`tf.nn.compute_average_loss`) does, halves every step on 2 replicas. Build the model
    and this trainer inside `strategy.scope()`."""

    def __init__(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.strategy = strategy
        super().__init__(*args, **kwargs)
        self._step: Any = None

    def _compile(self) -> Any:
        import tensorflow as tf

        strategy, model = self.strategy, self.model
        loss_fn, optimizer = self.loss_fn, self.optimizer

        def replica_step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))  # already / replicas
            variables = model.trainable_variables
            grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                     for g, v in zip(tape.gradient(loss, variables), variables)]
            optimizer.apply(grads, variables)
            return loss

        @tf.function
        def step(x: Any, y: Any) -> Any:  # the replicas' scaled losses sum to the global mean
            return strategy.reduce("SUM", strategy.run(replica_step, args=(x, y)), axis=None)

        return step

    def _shards(self, t: Any) -> Any:
        n = int(t.shape[0]) // self.strategy.num_replicas_in_sync

        def part(ctx: Any) -> Any:
            r = ctx.replica_id_in_sync_group
            return t[r * n:(r + 1) * n]

        return self.strategy.experimental_distribute_values_from_function(part)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        from nnzoo.keras_impl.training import floatx
        from nnzoo.runtime import to_numpy

        kx, ky = self.tensors(x, y)
        with floatx(self.dtype), self.strategy.scope():
            if not self.optimizer.built:
                self.optimizer.build(self.model.trainable_variables)
            if self._step is None:
                self._step = self._compile()
            loss = self._step(self._shards(kx), self._shards(ky))
        return float(to_numpy(loss))
