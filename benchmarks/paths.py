"""The execution paths of each framework, as zero-argument callables ready to be timed.

Inference (batch of inputs in, outputs out, no gradients):
  torch  eager          `model.eval()`, NCHW, under `torch.inference_mode()`
  torch  channels_last  `nnzoo.optimize(model)`: the same plus channels-last weights and input
  torch  compile        `nnzoo.optimize(model, compile=True)`: the same under `torch.compile`
  keras  eager          `model(x, training=False)`, op by op
  keras  predict        `model.predict(x, batch_size=len(x))`
  keras  function       `nnzoo.optimize(model)`: `model(x, training=False)` in one `tf.function`
  keras  xla            `nnzoo.optimize(model, compile=True)`: the same with `jit_compile=True`
Training (one step: forward in training mode, mean-squared-error loss against a fixed random
target, backward, plain SGD update):
  torch  eager / channels_last   `zero_grad`, forward, `backward()`, `optimizer.step()`
  keras  fit / xla               `model.train_on_batch` after `compile(jit_compile=False/True)`:
                                 the step `model.fit` runs. (An eager Keras training step is not
                                 a path anyone uses: `fit` always compiles its step.)
Non-image models skip channels_last (it is a layout of 4-d tensors).
Exported (kind "onnx", nnzoo's PyTorch build only, in a job of its own):
  torch  onnxruntime    `nnzoo.export(model, "onnx", ...)` (the dynamo exporter), run by an
                        onnxruntime CPU session with the job's thread count; the artifact's size
                        is reported with it
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nnzoo.fast import optimize

INFER = {"torch": ("eager", "channels_last", "compile"),
         "keras": ("eager", "predict", "function", "xla")}
TRAIN = {"torch": ("eager", "channels_last"), "keras": ("fit", "xla")}
FAST = {"torch": "channels_last", "keras": "function"}  # what nnzoo.optimize(model) returns
ONNX = ("onnxruntime",)
#: models measured in onnxruntime by default (`--onnx` chooses others)
ONNX_MODELS = ("resnet50", "vit_s_16")
LR = 1e-4


# ---- PyTorch ---------------------------------------------------------------------------------
def _layout(model: Any, x: Any, channels_last: bool) -> Any:
    import torch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    return x.contiguous(memory_format=fmt) if x.dim() == 4 else x


def torch_infer(model: Any, x: np.ndarray, path: str) -> Callable[[], Any]:
    import torch

    xt = torch.from_numpy(x)
    if path == "eager":
        model.eval()
        _layout(model, xt, False)

        def call() -> Any:
            with torch.inference_mode():
                return model(xt)

        return call
    if path == "compile":
        torch._dynamo.reset()  # one static-shape graph per batch size, not a dynamic one
    fast = optimize(model, compile=path == "compile")
    return lambda: fast(xt)


def torch_train(model: Any, x: np.ndarray, target: np.ndarray, path: str) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    xt = _layout(model, torch.from_numpy(x), path == "channels_last")
    yt = torch.from_numpy(target)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def step() -> Any:
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(xt), yt)
        loss.backward()
        opt.step()
        return loss

    return step


def torch_output(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def onnx_infer(model: Any, x: np.ndarray, threads: int) -> tuple[Callable[[], Any], int]:
    """Export with `nnzoo.export` (unchecked: the tests check it), open an onnxruntime session;
    (the call, the artifact's size in bytes)."""
    import tempfile
    from pathlib import Path

    import onnxruntime as ort

    import nnzoo

    path = Path(tempfile.mkdtemp()) / "model.onnx"
    nnzoo.export(model, "onnx", path, check=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    size = path.stat().st_size
    path.unlink()
    return (lambda: session.run(None, {name: x})), size


# ---- Keras -----------------------------------------------------------------------------------
def keras_infer(model: Any, x: np.ndarray, path: str) -> Callable[[], Any]:
    import tensorflow as tf

    xt = tf.constant(x)
    if path == "eager":
        return lambda: model(xt, training=False)
    if path == "predict":
        return lambda: model.predict(xt, batch_size=len(x), verbose=0)
    fast = optimize(model, compile=path == "xla")
    return lambda: fast(xt)


def keras_train(model: Any, x: np.ndarray, target: np.ndarray, path: str) -> Callable[[], Any]:
    import keras
    import tensorflow as tf

    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LR), loss="mse",
                  jit_compile=path == "xla")
    xt, yt = tf.constant(x), tf.constant(target)
    return lambda: model.train_on_batch(xt, yt)


def keras_output(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


def sync(out: Any) -> Any:
    """Wait for a TensorFlow result (eager ops may return before the work is done).

    PyTorch on a CPU returns when the work is done; its results are left alone.
    """
    if type(out).__module__.startswith("tensorflow") and hasattr(out, "numpy"):
        return out.numpy()
    return out
