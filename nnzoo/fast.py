"""The fast inference path in one call: `nnzoo.optimize(model)`.

Each framework's quickest way to run a trained model on a CPU is a handful of settings that are
easy to forget, and forgetting them costs more than most differences between the frameworks.
Measured on a 2-core CPU (ResNet-50; benchmarks/results/latest.md): PyTorch runs batch 16 in
0.67x the time once weights and inputs are channels-last (0.53x under `torch.compile`); Keras
runs it in 0.63x the time inside a `tf.function` than as an eager call (0.41x at batch 1), and
`model.predict`, made for datasets, is slower than the `tf.function` for one batch at a time.
`optimize` applies these settings; the benchmarks (`python -m benchmarks.run`) measure every
path, so the claim stays checked.

Importing this module imports no framework; `optimize` imports the one the model belongs to.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FastModel", "optimize"]


class FastModel:
    """A model prepared for inference: call it like the model, on the model's native layout.

    `model` is the prepared model itself (for PyTorch: the same module, now in eval mode and,
    for images, channels-last); `backend` is "torch" or "keras".
    """

    def __init__(self, fn: Any, model: Any, backend: str, description: str) -> None:
        self._fn = fn
        self.model = model
        self.backend = backend
        self.description = description

    def __call__(self, *inputs: Any) -> Any:
        return self._fn(*inputs)

    def __repr__(self) -> str:
        return f"FastModel({self.backend}: {self.description})"


def optimize(model: Any, *, compile: bool = False) -> FastModel:
    """Return a callable that runs `model` for inference on its backend's fastest CPU path.

    PyTorch (`torch.nn.Module`; the input stays NCHW for images):
      - `model.eval()` (dropout off, batch-norm running statistics), in place;
      - for image models, weights converted to channels-last memory format in place, and each
        input converted on the way in (the values, shapes and NCHW indexing are unchanged:
        only the strides differ, which lets oneDNN use its fast convolution kernels);
      - every call runs under `torch.inference_mode()`: no autograd bookkeeping. The outputs
        are inference tensors (they cannot enter a later autograd graph);
      - `compile=True` adds `torch.compile` (the first call compiles: 20-40 s for a ResNet-50).

    Keras (`keras.Model`, TensorFlow backend; images NHWC):
      - the model is called with `training=False` inside one `tf.function` whose input
        signature is the model's input with a free batch axis (and the free spatial axes of
        models that take any image size), so that batches of any size reuse one trace;
      - `compile=True` sets `jit_compile=True` (XLA). On a CPU it rarely helps; it is there
        for accelerators.

    An image model is an nnzoo build whose spec says `input_kind == "image"`, or, for any other
    PyTorch module, one that contains a `Conv2d`. The returned `FastModel` computes the same
    outputs as `model(x)` in inference mode (checked by tests/test_fast.py).
    """
    from nnzoo.backends import backend_of

    backend = backend_of(model)
    return _optimize_torch(model, compile) if backend == "torch" else _optimize_keras(model, compile)


def _is_image_model(model: Any) -> bool:
    spec = getattr(model, "spec", None)
    if spec is not None and hasattr(spec, "input_kind"):
        return spec.input_kind == "image"
    import torch

    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def _optimize_torch(model: Any, compile: bool) -> FastModel:
    import torch

    model.eval()
    image = _is_image_model(model)
    if image:
        model.to(memory_format=torch.channels_last)
    run = torch.compile(model) if compile else model
    channels_last = torch.channels_last

    def call(x: Any) -> Any:
        with torch.inference_mode():
            if image and isinstance(x, torch.Tensor) and x.dim() == 4:
                x = x.contiguous(memory_format=channels_last)
            return run(x)

    parts = ["eval", "inference_mode"] + (["channels_last"] if image else [])
    return FastModel(call, model, "torch", " + ".join(parts + (["torch.compile"] if compile else [])))


def input_signature(model: Any) -> list[Any]:
    """`tf.TensorSpec`s for a Keras model's inputs, batch axis (and free axes) left as None."""
    import tensorflow as tf

    inputs = getattr(model, "inputs", None)
    if inputs:
        return [tf.TensorSpec((None, *tuple(t.shape)[1:]), t.dtype, name=None) for t in inputs]
    spec = getattr(model, "spec", None)  # a model without a functional graph: ask its spec
    if spec is None:
        raise TypeError("optimize needs a functional Keras model (with .inputs) or an nnzoo build")
    shape = list(spec.input_shape())
    if spec.input_kind == "image":
        shape = [*shape[1:], shape[0]]
    for axis in spec.flexible_axes(channels_last=True):
        shape[axis] = None
    dtype = "int64" if spec.input_kind == "tokens" else "float32"
    return [tf.TensorSpec((None, *shape), dtype)]


def _optimize_keras(model: Any, compile: bool) -> FastModel:
    import tensorflow as tf

    signature = input_signature(model)
    if len(signature) == 1:
        fn = tf.function(lambda x: model(x, training=False), input_signature=signature,
                         jit_compile=compile)
    else:
        fn = tf.function(lambda *xs: model(list(xs), training=False), input_signature=signature,
                         jit_compile=compile)
    description = "tf.function(training=False)" + (" + XLA" if compile else "")
    return FastModel(fn, model, "keras", description)
