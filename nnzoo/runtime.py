"""Running and counting a model of either backend: the services every check and tool shares.

`count_params` counts by DESIGN.md's definition; `run` calls a model in inference mode on an
input in canonical layout and returns its output in canonical layout, on the CPU or the GPU.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnzoo import backends
from nnzoo.errors import DeviceError
from nnzoo.layout import from_keras, shape_from_keras, to_keras


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts by DESIGN.md's definition (equal between backends for every model).

    trainable: torch parameters that require grad <-> Keras `trainable_weights`.
    non_trainable: frozen parameters and persistent buffers (batch-norm running statistics; not
    the `num_batches_tracked` counter) <-> Keras `non_trainable_weights`.
    """

    trainable: int
    non_trainable: int

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def __str__(self) -> str:
        return f"{self.total:,} ({self.trainable:,} trainable, {self.non_trainable:,} state)"


def count_params(model: Any) -> ParamCount:
    """Count a PyTorch or a Keras model's parameters the same way."""
    if backends.backend_of(model) == "torch":
        params = dict(model.named_parameters())
        trainable = sum(p.numel() for p in params.values() if p.requires_grad)
        frozen = sum(p.numel() for p in params.values() if not p.requires_grad)
        state = sum(
            t.numel()
            for k, t in model.state_dict(keep_vars=True).items()
            if k not in params and not k.endswith("num_batches_tracked")
        )
        return ParamCount(trainable, frozen + state)
    size = lambda ws: sum(int(np.prod(w.shape)) for w in ws)  # noqa: E731
    return ParamCount(size(model.trainable_weights), size(model.non_trainable_weights))


# ---- running a model in inference mode, in canonical layout -----------------------------------
def check_device(device: str) -> None:
    if device not in ("cpu", "gpu"):
        raise DeviceError(f"unknown device {device!r}; choose 'cpu' or 'gpu'")


def gpu_status() -> tuple[bool, str]:
    """(usable, reason): PyTorch (CUDA) and the active Keras backend must both see a GPU."""
    import torch

    if not torch.cuda.is_available():
        return False, "PyTorch sees no CUDA device"
    backends.require("keras")
    active = backends.keras_backend()
    if active == "tensorflow":
        import tensorflow as tf

        seen = bool(tf.config.list_physical_devices("GPU"))
    elif active == "jax":
        import jax

        seen = any(d.platform == "gpu" for d in jax.devices())
    else:
        seen = True  # Keras on PyTorch: the CUDA device PyTorch sees
    return (True, "") if seen else (False, f"Keras's {active} backend sees no GPU")


@contextlib.contextmanager
def keras_device(device: str) -> Iterator[None]:
    """Place a Keras call on the CPU or the GPU, in the active Keras backend's own way."""
    active = backends.keras_backend()
    if active == "tensorflow":
        import tensorflow as tf

        with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
            yield
    elif active == "jax":
        import jax

        with jax.default_device(jax.devices("gpu" if device == "gpu" else "cpu")[0]):
            yield
    else:
        import keras

        with keras.device("cuda" if device == "gpu" else "cpu"):
            yield


@contextlib.contextmanager
def ieee_float32(device: str) -> Iterator[None]:
    """On the GPU, float32 maths in full IEEE float32 in every framework loaded, for the scope.

    The frameworks' GPU defaults differ, and none is float32 throughout: PyTorch runs cuDNN
    convolutions and RNNs in TF32 (a 10-bit mantissa) but cuBLAS matmuls in float32; JAX runs
    both in TF32 (its 'default' precision); TensorFlow enables TF32 for both. Left alone, a
    float32 check on an H200 measured ViT-S/16 (quick input) 5.7e-4 apart against a bound of
    1.9e-5, and an MLP on JAX 2.8e-4 against 1e-5. So every nnzoo run on the GPU states one
    precision. PyTorch's and TensorFlow's switches are process-wide: they are restored on exit.
    """
    if device != "gpu":
        yield
        return
    with contextlib.ExitStack() as stack:
        if "torch" in sys.modules:
            stack.enter_context(_torch_ieee_float32())
        if "jax" in sys.modules:
            import jax

            stack.enter_context(jax.default_matmul_precision("float32"))
        if "tensorflow" in sys.modules:
            import tensorflow as tf

            was = tf.config.experimental.tensor_float_32_execution_enabled()
            tf.config.experimental.enable_tensor_float_32_execution(False)
            stack.callback(tf.config.experimental.enable_tensor_float_32_execution, was)
        yield


@contextlib.contextmanager
def _torch_ieee_float32() -> Iterator[None]:
    """TF32 off for PyTorch's CUDA matmuls, convolutions and RNNs (one switch per operation since
    PyTorch 2.9; before it, the two `allow_tf32` flags)."""
    import torch

    cudnn = torch.backends.cudnn
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):
        knobs = [torch.backends.cuda.matmul, cudnn.conv, cudnn.rnn]
        saved = [k.fp32_precision for k in knobs]
        for k in knobs:
            k.fp32_precision = "ieee"
        try:
            yield
        finally:
            for k, value in zip(knobs, saved):
                k.fp32_precision = value
        return
    was = torch.backends.cuda.matmul.allow_tf32, cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, cudnn.allow_tf32 = was


def torch_input(model: Any, x: np.ndarray) -> Any:
    """`x` as a tensor on the device that holds `model`'s weights."""
    import torch

    where = next(model.parameters(), None)
    return torch.from_numpy(x).to(where.device if where is not None else "cpu")


def to_numpy(value: Any) -> np.ndarray:
    """A tensor of any framework as a numpy array (detached from autograd where there is one)."""
    if "torch" in sys.modules:
        import torch

        if isinstance(value, torch.Tensor):
            return value.detach().cpu().numpy()
    if "keras" in sys.modules:
        import keras

        return np.asarray(keras.ops.convert_to_numpy(value))
    return np.asarray(value)


def run(model: Any, x: np.ndarray, *, device: str = "cpu", compiled: bool = False) -> np.ndarray:
    """Run an nnzoo model of either backend in inference mode on canonical input `x`.

    On the GPU, float32 is IEEE float32 (`ieee_float32`), not a framework's TF32 default.
    `compiled=True`: on Keras's JAX backend, one `nnzoo.xla.xla_jit` of the model's stateless call
    (made on first use, dropped with the model) instead of the eager call; elsewhere it changes
    nothing.
    The checks ask for it: eager JAX compiles every operation for every new input shape (428
    compiles for one GRU export check), so a check that runs a model a few times ran 1.5-3x
    slower (measured: EfficientNet-B0's numeric check 17.9 -> 9.1 s). It is not the default:
    JAX keeps some memory per compiled program after the model is gone (200 build-run-discard
    cycles grew 60-74 MB where eager calls grew 19), which a process building many models pays.
    """
    check_device(device)
    spec = backends.spec_of(model)
    if backends.backend_of(model) == "torch":
        import torch

        dev = torch.device("cuda" if device == "gpu" else "cpu")
        model.eval().to(dev)
        with torch.no_grad(), ieee_float32(device):
            y = model(torch.from_numpy(x).to(dev))
        return y.detach().cpu().numpy()
    kx = to_keras(x, spec.input_kind)
    with keras_device(device), ieee_float32(device):
        if compiled and backends.keras_backend() == "jax":
            spec.check_input_dtype(str(x.dtype))  # what ZooModel.__call__ checks
            spec.check_input_shape(tuple(kx.shape), channels_last=True)
            y = _jitted(model)(*weights_of(model), kx)
        else:
            y = model(kx, training=False)
    return from_keras(to_numpy(y), spec.output_kind)


def stateless_inference(model: Any) -> Callable[[Any, Any, Any], Any]:
    """A Keras model's inference as a pure function `(weights, state, x) -> y` of its weights
    (`model.stateless_call`), for JAX to trace: jit it, or take its output shape. It holds the
    model weakly, so a cached transform of it does not keep the model alive."""
    ref = weakref.ref(model)

    def infer(values: Any, state: Any, x: Any) -> Any:
        return ref().stateless_call(values, state, x, training=False)[0]

    return infer


def weights_of(model: Any) -> tuple[list[Any], list[Any]]:
    """A Keras model's (trainable, non-trainable) variable values, `stateless_inference`'s first
    two arguments. Read at each call, never kept: Keras's predict and fit functions donate the
    variables' buffers to XLA and replace them, so values taken once can point at deleted ones."""
    return ([v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables])


#: Keras model -> its jitted inference call on JAX (`run(..., compiled=True)`)
_JITTED: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _jitted(model: Any) -> Any:
    """`stateless_inference(model)`, jitted once per model and dropped with it. The weights are
    arguments, so loading new ones reuses the compiled program."""
    fn = _JITTED.get(model)
    if fn is None:
        from nnzoo.xla import xla_jit

        fn = _JITTED[model] = xla_jit(stateless_inference(model))
    return fn


def output_shape(model: Any, x: np.ndarray, *, device: str = "cpu") -> tuple[int, ...]:
    """The canonical output shape of `model` on `x`, as the framework itself computes it.

    A real inference run, except on Keras's JAX backend: there `jax.eval_shape` traces the
    model's stateless call through JAX's own shape rules, every layer, without compiling or
    computing. Eager JAX compiles each operation for each new input shape, and a shape check runs
    every model at its full size once: 5-40 s a model on a 2-core machine, for a shape that the
    trace gives in well under a second. (Numeric checks run the model for real.)
    """
    if backends.backend_of(model) == "torch" or backends.keras_backend() != "jax":
        return tuple(run(model, x, device=device).shape)
    import jax

    spec = backends.spec_of(model)
    check_device(device)
    kx = to_keras(x, spec.input_kind)
    with keras_device(device):
        y = jax.eval_shape(stateless_inference(model), *weights_of(model), kx)
    return shape_from_keras(tuple(y.shape), spec.output_kind)


# ---- what data-parallel workers hand back (nnzoo.distributed) ---------------------------------
def save_results(path: Path, results: list[dict[str, Any]]) -> None:
    """Each case's final state dict, its losses, its parameters' keys, whether it has batch norm
    and (where given) over how many devices its batches were split, in one .npz."""
    arrays = {f"{i}/{k}": v for i, r in enumerate(results) for k, v in r["state"].items()}
    for i, r in enumerate(results):
        arrays[f"{i}/__losses__"] = np.asarray(r["losses"], dtype=np.float64)
        arrays[f"{i}/__params__"] = np.asarray(r.get("params", []), dtype=str)
        arrays[f"{i}/__batchnorm__"] = np.asarray(bool(r.get("batchnorm")))
        if "split" in r:
            arrays[f"{i}/__split__"] = np.asarray(r["split"])
    np.savez(path, **arrays)


def load_results(path: Path, n: int) -> list[dict[str, Any]]:
    """What `save_results` wrote: `n` cases."""
    out: list[dict[str, Any]] = [{"state": {}, "losses": []} for _ in range(n)]
    with np.load(path) as data:
        for key in data.files:
            i, _, name = key.partition("/")
            if name == "__losses__":
                out[int(i)]["losses"] = [float(v) for v in data[key]]
            elif name == "__split__":
                out[int(i)]["split"] = int(data[key])
            elif name == "__params__":
                out[int(i)]["params"] = [str(k) for k in data[key]]
            elif name == "__batchnorm__":
                out[int(i)]["batchnorm"] = bool(data[key])
            else:
                out[int(i)]["state"][name] = data[key]
    return out


def exit_with_parent(interval: float = 0.5) -> None:
    """End this process as soon as the process that started it is gone (its parent changes): a
    data-parallel worker must not outlive its launcher, even one killed with SIGKILL, which can
    run no clean-up of its own. A daemon thread polls; the process exits with status 1. The
    launcher's pid comes from NNZOO_PARENT_PID where it set it (a launcher killed while this
    process was still starting would otherwise go unnoticed), else it is the parent now."""
    import os
    import threading
    import time

    parent = int(os.environ.get("NNZOO_PARENT_PID") or os.getppid())

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="nnzoo-exit-with-parent", daemon=True).start()
