"""The execution paths of each framework, as zero-argument callables ready to be timed.

A framework label is "torch" or "keras/<Keras backend>" (tensorflow, jax, torch: Keras picks its
backend once per process, and each job runs in its own).

Inference (a batch of inputs in, outputs out, no gradients): every candidate path of
`nnzoo.optimize` (`nnzoo.fast.paths`, the same names and the same code), plus `optimize` itself:
  torch             eager, inference_mode (eval + no_grad / inference_mode), channels_last and
                    channels_last+inference_mode (images), compile, compile+freezing
                    (torch.compile, with inductor freezing)
  keras/tensorflow  eager, function (tf.function), predict (predict_on_batch), xla
  keras/jax         eager, jit (jax.jit of the stateless call), predict
  keras/torch       eager, inference_mode, predict, compile (torch.compile of the call)
  all               optimize: `nnzoo.optimize(model, x)` tuned on this very input, with its
                    defaults (30 s budget, compiled paths when the budget allows them), and
                    compile=True for the models whose compiled paths the run measures
Every path starts from the model as built: a channels-last path works on a copy, so the paths
after it see the layout they expect.
Training (one step: forward in training mode, mean-squared-error loss against a fixed random
target, backward, plain SGD update):
  torch  eager / channels_last   `zero_grad`, forward, `backward()`, `optimizer.step()`
  keras  fit                     `model.train_on_batch` after `compile(jit_compile="auto")`: the
                                 step `model.fit` runs by default (tf.function on TensorFlow,
                                 jax.jit on JAX, eager on PyTorch)
  keras/tensorflow  xla          the same with `jit_compile=True`
Non-image models skip channels_last (it is a layout of 4-d tensors).
Exported (kind "onnx", nnzoo's PyTorch build only, in a job of its own):
  torch  onnxruntime    `nnzoo.export(model, "onnx", ...)` (the dynamo exporter), run by an
                        onnxruntime CPU session with the job's thread count; the artifact's size
                        is reported with it
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from nnzoo.fast.paths import COMPILED, FIXED, NAMES

LABELS = ("torch", "keras/tensorflow", "keras/jax", "keras/torch")
INFER = {label: (*NAMES[label], "optimize") for label in LABELS}
TRAIN = {"torch": ("eager", "channels_last"), "keras/tensorflow": ("fit", "xla"),
         "keras/jax": ("fit",), "keras/torch": ("fit",)}
#: What `optimize(model, autotune=False)` runs: the path of the memory jobs (no tuning there).
FAST = {label: FIXED[label][0] for label in LABELS}
#: Compiled paths measured only for the run's compile set (torch.compile: minutes per model on
#: a small CPU); XLA and jax.jit are measured for every model.
COMPILE_ONLY = COMPILED - {"xla"}
ONNX = ("onnxruntime",)
#: models measured in onnxruntime by default (`--onnx` chooses others)
ONNX_MODELS = ("resnet50", "vit_s_16")
LR = 1e-4


def framework(label: str) -> str:
    """The nnzoo backend of a label: "torch" or "keras"."""
    return "torch" if label == "torch" else "keras"


def tensor(x: np.ndarray, label: str) -> Any:
    if label == "torch":
        import torch

        return torch.from_numpy(x)
    import keras

    return keras.ops.convert_to_tensor(x)


def infer(model: Any, x: np.ndarray, label: str, path: str, *, compile: bool | None = None,
          budget: float = 30.0) -> Callable[[], Any]:
    """One inference path; `optimize`'s callable carries `.info` (its choice and tuning)."""
    from nnzoo.fast import optimize
    from nnzoo.fast.paths import paths_for

    xt = tensor(x, label)
    if label == "torch":
        import torch

        model.to(memory_format=torch.contiguous_format)
    if path in COMPILED or path == "optimize":
        _reset_dynamo()
    if path == "optimize":
        # on a copy: were it to go channels-last in place, the other paths kept for comparison
        # (`benchmarks.worker`) would run on a model whose layout they do not expect
        subject = copy.deepcopy(model) if label == "torch" else model
        fast = optimize(subject, xt, compile=compile, budget=budget, progress=False)
        report = fast.report

        def call() -> Any:
            return fast(xt)

        call.info = {"chose": fast.path, "tuning_s": report.tuning_s,  # type: ignore[attr-defined]
                     "tuned": [{k: p.get(k) for k in ("path", "status", "note", "median_s",
                                                      "first_s")}
                               for p in report.paths]}
        return call
    chosen = next((p for p in paths_for(model) if p.name == path), None)
    if chosen is None:
        raise ValueError(f"no path {path!r} for this model on {label}")
    fn = chosen.make(copy.deepcopy(model) if chosen.copies else model)
    return lambda: fn(xt)


def _reset_dynamo() -> None:
    """Compiled paths compile afresh, for this batch size (static shapes, not dynamic ones)."""
    import sys

    if "torch" in sys.modules:
        import torch

        torch._dynamo.reset()


def train(model: Any, x: np.ndarray, target: np.ndarray, label: str, path: str
          ) -> Callable[[], Any]:
    if label == "torch":
        return _torch_train(model, x, target, path)
    import keras

    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LR), loss="mse",
                  jit_compile=True if path == "xla" else "auto")
    xt, yt = tensor(x, label), tensor(target, label)
    return lambda: model.train_on_batch(xt, yt)


def _torch_train(model: Any, x: np.ndarray, target: np.ndarray, path: str) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    fmt = torch.channels_last if path == "channels_last" else torch.contiguous_format
    model.to(memory_format=fmt)
    xt = torch.from_numpy(x)
    xt = xt.contiguous(memory_format=fmt) if xt.dim() == 4 else xt
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


def output(model: Any, x: np.ndarray, label: str) -> np.ndarray:
    """The model's inference output on `x` (to size the training target)."""
    from nnzoo.runtime import to_numpy

    if label == "torch":
        import torch

        model.eval()
        with torch.inference_mode():
            return to_numpy(model(torch.from_numpy(x)))
    return to_numpy(model(tensor(x, label), training=False))


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


def sync(out: Any) -> Any:
    """Wait for the work behind a result (JAX and TensorFlow may return before it is done)."""
    from nnzoo.fast.tuning import sync as wait

    wait(out)
    return out
