"""Training a Keras build; `nnzoo/torch_impl/training.py` is the twin.

The specs (`nnzoo/specs/training.py`) state PyTorch's maths. Keras's own classes are used where
their maths is the same -- the losses (told `from_logits=True`), the step and cosine schedules,
SGD without weight decay (and, with momentum, at a constant rate) -- and a small Keras optimizer
with PyTorch's formula where it is not:
- `TorchSGD`: weight decay as an L2 term in the gradient, and a velocity that holds gradients,
  not learning-rate-scaled steps (Keras's SGD decays apart from the gradient and folds each
  step's rate into its velocity, so a changing rate acts differently), and a float64 momentum
  kept in float64 (Keras's SGD rounds it to float32 on TensorFlow: `_momentum_rounded`);
- `TorchAdam`: epsilon added after the bias correction (Keras's Adam and AdamW add it before:
  `eps_keras = eps * sqrt(1 - beta2**t)`, a factor that changes every step, so no constant
  epsilon makes stock Keras match), L2 (adam) or decoupled (adamw) weight decay;
- both clip the global gradient norm as `clip_grad_norm_` does (`max_norm / (norm + 1e-6)`).

Gradients come from the backend's own autodiff, in `backend_step`: the one function here with a
branch per Keras backend.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
from keras import ops

from nnzoo.errors import BackendError
from nnzoo.keras_impl.layers import serializable
from nnzoo.layout import to_keras
from nnzoo.runtime import to_numpy, weights_of
from nnzoo.specs.base import Spec
from nnzoo.specs.training import LossSpec, OptimizerSpec
from nnzoo.xla import xla_jit


def build_loss(loss: LossSpec, dtype: str = "float32") -> keras.losses.Loss:
    """Sparse cross-entropy on logits (over the last axis: per pixel for NHWC logits, per step
    for (N, steps, C)) or mean
    squared error, averaged over every element, computed in `dtype`."""
    if loss.kind == "mse":
        return keras.losses.MeanSquaredError(reduction="sum_over_batch_size", dtype=dtype)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                      reduction="sum_over_batch_size", dtype=dtype)


def build_schedule(opt: OptimizerSpec, *, steps: int) -> Any:
    """Keras's `ExponentialDecay(staircase=True)` or `CosineDecay`; the rate itself if constant.
    (Keras computes them in float32 whatever the floatx: 1e-3 becomes 1.00000005e-3, a drift of
    ~1e-10 in a float64 run.)"""
    s = opt.schedule
    if s.kind == "step":
        return keras.optimizers.schedules.ExponentialDecay(
            opt.lr, decay_steps=s.step_size, decay_rate=s.gamma, staircase=True)
    if s.kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(opt.lr, decay_steps=s.horizon(steps),
                                                      alpha=s.min_lr / opt.lr)
    return opt.lr


def _const(value: float, dtype: Any) -> Any:
    """A Python number as a tensor of `dtype`. (`ops.cast(0.9, "float64")` goes through float32
    on TensorFlow -- 0.8999999762 -- which is what Keras's own optimizers do with their
    hyperparameters; a float64 run would drift by 1e-9 from that alone.)"""
    return ops.convert_to_tensor(value, dtype=dtype)


class _GlobalClip:
    """PyTorch's `clip_grad_norm_`: every gradient times min(1, max_norm / (global norm + 1e-6))."""

    global_clipnorm: float | None

    def _clip_gradients(self, grads: list[Any]) -> list[Any]:
        if not self.global_clipnorm:
            return grads
        dtype = grads[0].dtype
        norm = ops.sqrt(sum(ops.sum(ops.square(g)) for g in grads))
        scale = ops.minimum(_const(self.global_clipnorm, dtype) / (norm + _const(1e-6, dtype)),
                            _const(1.0, dtype))
        return [g * scale for g in grads]


@serializable
class TorchSGD(_GlobalClip, keras.optimizers.Optimizer):
    """`torch.optim.SGD` (dampening 0): g += wd * w; v = m * v + g; w -= lr * (g + m * v if
    Nesterov else v)."""

    def __init__(self, learning_rate: Any = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 l2: float = 0.0, name: str = "torch_sgd", **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum, self.nesterov, self.l2 = momentum, nesterov, l2

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity") if self.momentum else []

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        dtype = variable.dtype
        lr, g = ops.cast(learning_rate, dtype), ops.cast(gradient, dtype)
        if self.l2:
            g = g + _const(self.l2, dtype) * variable
        if self.momentum:
            v = self.velocities[self._get_variable_index(variable)]
            m = _const(self.momentum, dtype)
            self.assign(v, v * m + g)
            g = g + m * v if self.nesterov else v
        self.assign_sub(variable, lr * g)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov,
                "l2": self.l2}


@serializable
class TorchAdam(_GlobalClip, keras.optimizers.Optimizer):
    """`torch.optim.Adam` / `AdamW`: epsilon after the bias correction,
    w -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps); weight decay as an L2 term in
    the gradient (`l2`: Adam's) or decoupled (`decoupled`: AdamW's w *= 1 - lr * wd first)."""

    def __init__(self, learning_rate: Any = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, l2: float = 0.0, decoupled: float = 0.0,
                 name: str = "torch_adam", **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.l2, self.decoupled = l2, decoupled

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        self.m, self.v = self.add_optimizer_variables(variables, ["m", "v"])

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        dtype = variable.dtype
        lr, g = ops.cast(learning_rate, dtype), ops.cast(gradient, dtype)
        b1, b2 = _const(self.beta_1, dtype), _const(self.beta_2, dtype)
        t = ops.cast(self.iterations + 1, dtype)
        if self.decoupled:
            self.assign(variable, variable * (1.0 - lr * _const(self.decoupled, dtype)))
        if self.l2:
            g = g + _const(self.l2, dtype) * variable
        index = self._get_variable_index(variable)
        m, v = self.m[index], self.v[index]
        self.assign(m, m + (g - m) * (1.0 - b1))  # PyTorch's lerp
        self.assign(v, v * b2 + g * g * (1.0 - b2))
        denom = ops.sqrt(v) / ops.sqrt(1.0 - ops.power(b2, t)) + _const(self.epsilon, dtype)
        self.assign_sub(variable, (m / denom) * (lr / (1.0 - ops.power(b1, t))))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "l2": self.l2, "decoupled": self.decoupled}


def _momentum_rounded(momentum: float, dtype: str) -> bool:
    """Whether Keras's SGD would apply `momentum` rounded to float32 in a `dtype` run: it casts the
    Python float with `ops.cast`, which on TensorFlow makes a float32 constant first (0.9 ->
    0.8999999762). In float64 that alone parts the weights by ~1e-8 within 3 steps, and a
    chaotic run (resnet18_cifar, 20 steps of SGD 0.01/0.9 at batch 4) past the parity bound."""
    return (dtype == "float64" and keras.backend.backend() == "tensorflow"
            and float(np.float32(momentum)) != momentum)


def build_optimizer(opt: OptimizerSpec, *, steps: int,
                    dtype: str = "float32") -> keras.optimizers.Optimizer:
    """Keras's SGD where its maths (and its rounding, in `dtype`) is PyTorch's; `TorchSGD` /
    `TorchAdam` otherwise."""
    rate = build_schedule(opt, steps=steps)
    clip = {"global_clipnorm": opt.clip_norm} if opt.clip_norm is not None else {}
    if opt.kind == "sgd":
        same = (not opt.weight_decay and not clip and not _momentum_rounded(opt.momentum, dtype)
                and (not opt.momentum or opt.schedule.kind == "constant"))
        if same:
            return keras.optimizers.SGD(rate, momentum=opt.momentum, nesterov=opt.nesterov)
        return TorchSGD(rate, momentum=opt.momentum, nesterov=opt.nesterov, l2=opt.weight_decay,
                        **clip)
    return TorchAdam(rate, beta_1=opt.betas[0], beta_2=opt.betas[1], epsilon=opt.eps,
                     l2=opt.weight_decay if opt.kind == "adam" else 0.0,
                     decoupled=opt.weight_decay if opt.kind == "adamw" else 0.0, **clip)


# ---- gradients and steps: the one place with a branch per Keras backend -------------------------
#: Compiled training steps, per model (held weakly) and per (loss, optimizer).
_COMPILED: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()


def backend_step(model: keras.Model, loss_fn: Any, x: Any, y: Any,
                 optimizer: keras.optimizers.Optimizer | None = None) -> tuple[Any, list[Any] | None]:
    """The loss on (x, y) in training mode and each trainable variable's gradient (in
    `model.trainable_variables` order; zeros where the loss does not reach), by the active
    backend's own autodiff; with `optimizer`, the update is applied too (and no gradients are
    returned). Batch-norm moving statistics move, as in any training step.

    TensorFlow: `tf.GradientTape` (sparse embedding gradients made dense), then
    `optimizer.apply`, the whole step in one `tf.function` per model. JAX: `jax.value_and_grad`
    of `model.stateless_call`, then `optimizer.stateless_apply`, jitted once per model
    (`nnzoo.xla.xla_jit`), the new values assigned back (gradients alone of the largest models:
    eagerly, `_eager_gradients`). PyTorch: `loss.backward()` on the Keras
    variables (they are torch parameters), then `optimizer.apply`, eagerly. A step is compiled
    because eager TensorFlow dispatches every small op from Python (0.5 s per step of a two-layer
    GRU) and eager JAX compiles each one for each new shape (minutes for a U-Net); gradients
    alone, taken once or twice per model by the gradient check, run eagerly on TensorFlow.
    """
    active = keras.backend.backend()
    if active not in ("tensorflow", "jax", "torch"):
        raise BackendError(f"keras/{active}", ["keras/tensorflow", "keras/jax", "keras/torch"])
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    if active == "jax":
        return _jax_step(model, loss_fn, x, y, optimizer)
    if active == "tensorflow":
        if optimizer is None:
            return _tf_gradients(model, loss_fn, x, y)
        return _compiled(model, loss_fn, optimizer, _tf_train_step)(x, y), None
    variables = model.trainable_variables
    for v in variables:
        v.value.grad = None
    loss = loss_fn(y, model(x, training=True))
    loss.backward()
    grads = [ops.zeros_like(v) if v.value.grad is None else v.value.grad for v in variables]
    if optimizer is None:
        return loss.detach(), grads
    optimizer.apply(grads, variables)
    return loss.detach(), None


def _compiled(model: keras.Model, loss_fn: Any, optimizer: Any, make: Any) -> Any:
    """`make(model ref, loss_fn, optimizer)`, made once per model, loss and optimizer. The
    compiled function holds the model weakly, so the model can be freed."""
    fns = _COMPILED.setdefault(model, {})
    key = (id(loss_fn), id(optimizer))
    if key not in fns:
        fns[key] = make(weakref.ref(model), loss_fn, optimizer)
    return fns[key]


def _tf_gradients(model: keras.Model, loss_fn: Any, x: Any, y: Any) -> tuple[Any, list[Any]]:
    import tensorflow as tf

    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    return loss, [ops.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                  for g, v in zip(tape.gradient(loss, variables), variables)]


def _tf_train_step(ref: Any, loss_fn: Any, optimizer: Any) -> Any:
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(x: Any, y: Any) -> Any:
        loss, grads = _tf_gradients(ref(), loss_fn, x, y)
        optimizer.apply(grads, ref().trainable_variables)
        return loss

    return step


def _jax_step(model: keras.Model, loss_fn: Any, x: Any, y: Any, optimizer: Any) -> tuple[Any, Any]:
    trainable, state = model.trainable_variables, model.non_trainable_variables
    values, state_values = weights_of(model)
    if optimizer is None:
        fn = _compiled(model, loss_fn, None, _jax_train_step)
        (loss, new_state), grads = fn(values, state_values, x, y)
        grads = list(grads)
    else:
        slots = optimizer.variables
        fn = _compiled(model, loss_fn, optimizer, _jax_train_step)
        loss, new_state, new_values, new_slots = fn(
            values, state_values, [v.value for v in slots], x, y)
        for var, value in zip([*trainable, *slots], [*new_values, *new_slots]):
            var.assign(value)
        grads = None
    for var, value in zip(state, new_state):
        var.assign(value)
    return loss, grads


#: Weights (bytes) past which Keras/JAX takes a model's gradients (no optimizer step) eagerly,
#: operation by operation, instead of as one `xla_jit` program: ViT-L and ViT-H in float64.
EAGER_GRADIENTS_ABOVE = 2**30
#: Keras layers that run grouped convolutions: depthwise ones always, the others with groups > 1.
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
              keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def _eager_gradients(model: keras.Model) -> bool:
    """Whether JAX's gradients of `model` run eagerly. Past EAGER_GRADIENTS_ABOVE a gradient
    check's time is its weights', not its arithmetic, and XLA compiling ViT's 24-32 encoder
    blocks as one unrolled program took 20-39 s, where eager JAX compiles each distinct
    operation once and reuses it for every block of that shape (measured on the 2-core AMD EPYC,
    float64, one check alone: ViT-L/16 71 -> 57 s, ViT-H/14 154 -> 110 s, peaks 0.6-1.5 GB lower).
    Not where the model has grouped convolutions: eager JAX runs those expanded into dense ones,
    which only `xla_jit` avoids (`nnzoo.xla`). Smaller models compile: their programs are
    shorter and their activations, which a compiled program fuses, matter more."""
    nbytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    return nbytes > EAGER_GRADIENTS_ABOVE and not any(
        isinstance(layer, _DEPTHWISE) or isinstance(layer, _CONVOLUTIONS) and layer.groups > 1
        for layer in model._flatten_layers())


def _jax_train_step(ref: Any, loss_fn: Any, optimizer: Any) -> Any:
    """Jitted `(values, state, x, y) -> ((loss, state), grads)` without an optimizer (eager for
    the largest models: `_eager_gradients`), or
    `(values, state, slots, x, y) -> (loss, state, values, slots)` with one."""
    import jax

    def loss_and_state(values: Any, state: Any, x: Any, y: Any) -> Any:
        out, state = ref().stateless_call(values, state, x, training=True)
        return loss_fn(y, out), state

    grad_fn = jax.value_and_grad(loss_and_state, has_aux=True)
    if optimizer is None:
        return grad_fn if _eager_gradients(ref()) else xla_jit(grad_fn)

    def train_step(values: Any, state: Any, slots: Any, x: Any, y: Any) -> Any:
        (loss, state), grads = grad_fn(values, state, x, y)
        values, slots = optimizer.stateless_apply(slots, grads, values)
        return loss, state, values, slots

    return xla_jit(train_step)


@contextlib.contextmanager
def floatx(dtype: str) -> Iterator[None]:
    """Keras's default float type for the block, as a user training in float64 sets it: an
    optimizer keeps its learning rate, and a schedule computes it, in floatx -- float32 unless
    told, which would round a float64 run's rate (0.01 -> 0.0099999998)."""
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


class Trainer:
    """One Keras build, its optimizer and loss: `step(x, y)` is one update (canonical inputs)."""

    def __init__(self, model: keras.Model, opt: OptimizerSpec, loss: LossSpec, *, steps: int) -> None:
        self.model, self.opt, self.loss = model, opt, loss
        self.spec: Spec = model.spec
        self.dtype = str(model.trainable_variables[0].dtype) if model.trainable_variables else "float32"
        with floatx(self.dtype):
            self.loss_fn = build_loss(loss, self.dtype)
            self.optimizer = build_optimizer(opt, steps=steps, dtype=self.dtype)

    def tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        """Canonical numpy arrays in Keras's layout (images NHWC), floats in the model's dtype."""
        kx = to_keras(x, self.spec.input_kind)
        if kx.dtype.kind == "f":
            kx = kx.astype(self.dtype)
        ky = y
        if y.dtype.kind == "f":
            ky = to_keras(y, self.spec.output_kind).astype(self.dtype)
        return ops.convert_to_tensor(kx), ops.convert_to_tensor(ky)

    def gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[Any]]:
        """The loss and each trainable variable's gradient, as the backend's own tensors: the
        caller converts them one at a time (the largest models' gradients are gigabytes)."""
        x, y = self.tensors(x, y)
        with floatx(self.dtype):
            loss, grads = backend_step(self.model, self.loss_fn, x, y)
        return float(to_numpy(loss)), list(grads or [])

    @property
    def lr(self) -> float:
        """The learning rate the next update uses."""
        with floatx(self.dtype):
            return float(to_numpy(self.optimizer.learning_rate))

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One update on (x, y). Returns the loss before the update."""
        x, y = self.tensors(x, y)
        with floatx(self.dtype):  # the optimizer's constants and schedule take floatx
            loss, _ = backend_step(self.model, self.loss_fn, x, y, self.optimizer)
        return float(to_numpy(loss))
