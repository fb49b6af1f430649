"""The inference paths `optimize` chooses among, per framework and Keras backend.

A path is a way to run a model for inference: `make(model)` prepares it and returns a callable
taking the model's inputs (native layout: NCHW images for PyTorch, NHWC for Keras). The order of
each list is simplest first: among paths measured equally fast, the first one wins.

The Keras backend branch sits here and only here (`keras_paths`): each Keras backend has its own
compiler, and a path written for one does not run on another.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Call = Callable[..., Any]


@dataclass(frozen=True)
class Path:
    """One candidate: `make(model)` returns the call.

    copies: the path changes the model (its weights' memory layout), so it is tuned on a copy
    and applied to the model itself only when chosen. compiles: a compiler runs at the first
    call (seconds to minutes): such paths are tried only when `optimize`'s compile rule allows.
    """

    name: str
    what: str
    make: Callable[[Any], Call]
    copies: bool = False
    compiles: bool = False


def label(model: Any) -> str:
    """'torch', or 'keras/<its backend>' for a Keras model."""
    from nnzoo.backends import backend_of, keras_backend

    return "torch" if backend_of(model) == "torch" else f"keras/{keras_backend()}"


def paths_for(model: Any) -> list[Path]:
    """Every candidate path of the model's framework (and Keras backend), simplest first."""
    which = label(model)
    return torch_paths(is_image_model(model)) if which == "torch" else keras_paths(
        which.split("/", 1)[1])


#: The paths' names per framework label, known without importing a framework (the benchmarks
#: plan with them); tests/test_fast.py checks them against the paths themselves. PyTorch's
#: channels-last paths exist for image models only.
NAMES = {"torch": ("eager", "inference_mode", "channels_last", "channels_last+inference_mode",
                   "compile", "compile+freezing"),
         "keras/tensorflow": ("eager", "function", "predict", "xla"),
         "keras/jax": ("eager", "jit", "predict"),
         "keras/torch": ("eager", "inference_mode", "predict", "compile")}
COMPILED = {"compile", "compile+freezing", "xla"}  # the names of paths that run a compiler

#: What `optimize(..., autotune=False)` runs: the fixed recipe, (without, with) compile.
FIXED = {"torch": ("channels_last+inference_mode", "compile"),
         "torch/non-image": ("inference_mode", "compile"),
         "keras/tensorflow": ("function", "xla"), "keras/jax": ("jit", "jit"),
         "keras/torch": ("eager", "compile")}


def fixed_path(model: Any, compile: bool) -> Path:
    which = label(model)
    if which == "torch" and not is_image_model(model):
        which = "torch/non-image"
    name = FIXED[which][bool(compile)]
    return next(p for p in paths_for(model) if p.name == name)


def is_image_model(model: Any) -> bool:
    """An nnzoo build whose spec takes images, or any other module that holds a Conv2d."""
    spec = getattr(model, "spec", None)
    if spec is not None and hasattr(spec, "input_kind"):
        return spec.input_kind == "image"
    import torch

    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


# ---- PyTorch ---------------------------------------------------------------------------------
def torch_paths(image: bool) -> list[Path]:
    import torch

    cl = "eval, channels-last weights and input"
    found = [Path("eager", "eval, no_grad", _torch_eager(torch.no_grad)),
             Path("inference_mode", "eval, inference_mode", _torch_eager(torch.inference_mode))]
    if image:
        found += [Path("channels_last", f"{cl}, no_grad",
                       _torch_eager(torch.no_grad, channels_last=True), copies=True),
                  Path("channels_last+inference_mode", f"{cl}, inference_mode",
                       _torch_eager(torch.inference_mode, channels_last=True), copies=True)]
    found += [Path("compile", "eval, torch.compile (inductor), no_grad", _torch_compiled(False),
                   compiles=True),
              Path("compile+freezing", "eval, torch.compile with inductor freezing (weights "
                   "folded in as constants), no_grad", _torch_compiled(True), compiles=True)]
    return found


def _torch_eager(grad_off: Callable[[], Any], channels_last: bool = False
                 ) -> Callable[[Any], Call]:
    def make(model: Any) -> Call:
        import torch

        model.eval()
        fmt = torch.channels_last
        if channels_last:
            model.to(memory_format=fmt)

        def call(*xs: Any) -> Any:
            if channels_last:
                xs = tuple(x.contiguous(memory_format=fmt)
                           if isinstance(x, torch.Tensor) and x.dim() == 4 else x for x in xs)
            with grad_off():
                return model(*xs)

        return call

    return make


def _torch_compiled(freezing: bool) -> Callable[[Any], Call]:
    def make(model: Any) -> Call:
        import torch

        model.eval()
        # options apply to this compile only (and to its recompiles), not to the process
        fn = torch.compile(model, options={"freezing": True} if freezing else None)

        def call(*xs: Any) -> Any:
            with torch.no_grad():
                return fn(*xs)

        return call

    return make


# ---- Keras: the one branch per Keras backend ---------------------------------------------------
def keras_paths(active: str) -> list[Path]:
    """Eager and predict on every backend, plus each backend's own compiled call."""
    eager = Path("eager", "model(x, training=False), op by op", _keras_eager(active))
    predict = Path("predict", "model.predict_on_batch(x): Keras's own predict function",
                   lambda m: lambda *xs: m.predict_on_batch(_one(xs)))
    if active == "tensorflow":
        return [eager,
                Path("function", "model(x, training=False) in one tf.function",
                     _tf_function(False)),
                predict,
                Path("xla", "the same tf.function with jit_compile=True (XLA)",
                     _tf_function(True), compiles=True)]
    if active == "jax":
        return [eager,
                Path("jit", "jax.jit of model.stateless_call(..., training=False), the "
                     "weights passed in", _jax_jit),
                predict]
    if active == "torch":
        import torch

        return [eager,
                Path("inference_mode", "model(x, training=False) under torch.inference_mode",
                     _keras_eager(active, torch.inference_mode)),
                predict,
                Path("compile", "torch.compile of model(x, training=False), no_grad",
                     _keras_torch_compiled, compiles=True)]
    raise ValueError(f"unknown Keras backend {active!r}")


def _one(xs: tuple[Any, ...]) -> Any:
    return xs[0] if len(xs) == 1 else list(xs)


def _keras_eager(active: str, grad_off: Callable[[], Any] | None = None
                 ) -> Callable[[Any], Call]:
    def make(model: Any) -> Call:
        if active == "torch":  # Keras's variables are torch parameters: no autograd wanted
            import torch

            ctx = grad_off or torch.no_grad
        else:
            ctx = contextlib.nullcontext

        def call(*xs: Any) -> Any:
            with ctx():
                return model(_one(xs), training=False)

        return call

    return make


def _tf_function(xla: bool) -> Callable[[Any], Call]:
    def make(model: Any) -> Call:
        import tensorflow as tf

        signature = input_signature(model)
        if len(signature) == 1:
            return tf.function(lambda x: model(x, training=False), input_signature=signature,
                               jit_compile=xla)
        return tf.function(lambda *xs: model(list(xs), training=False),
                           input_signature=signature, jit_compile=xla)

    return make


def input_signature(model: Any) -> list[Any]:
    """`tf.TensorSpec`s for a Keras model's inputs, batch axis (and free axes) left as None:
    one trace serves every batch size."""
    import tensorflow as tf

    inputs = getattr(model, "inputs", None)
    if inputs:
        return [tf.TensorSpec((None, *tuple(t.shape)[1:]), t.dtype) for t in inputs]
    spec = getattr(model, "spec", None)  # a model without a functional graph: ask its spec
    if spec is None:
        raise TypeError("this path needs a functional Keras model (with .inputs) or an nnzoo "
                        "build")
    shape = list(spec.input_shape())
    if spec.input_kind == "image":
        shape = [*shape[1:], shape[0]]
    for axis in spec.flexible_axes(channels_last=True):
        shape[axis] = None
    dtype = "int64" if spec.input_kind == "tokens" else "float32"
    return [tf.TensorSpec((None, *shape), dtype)]


def _jax_jit(model: Any) -> Call:
    """One XLA program for the whole call, the weights passed in as arguments and read at each
    call (`runtime.weights_of`), so later weight changes are seen."""
    import jax

    from nnzoo.runtime import stateless_inference, weights_of

    fn = jax.jit(stateless_inference(model))
    return lambda *xs: fn(*weights_of(model), _one(xs))


def _keras_torch_compiled(model: Any) -> Call:
    import torch

    fn = torch.compile(lambda *xs: model(_one(xs), training=False))

    def call(*xs: Any) -> Any:
        with torch.no_grad():
            return fn(*xs)

    return call
