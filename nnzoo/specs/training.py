"""Training, described once: the optimizer, its learning-rate schedule, gradient clipping and the
loss -- in PyTorch's conventions, and framework-neutral.

The frameworks disagree on more than names (the training entries of `nnzoo/differences.py`
measure each): Keras's Adam adds epsilon before the bias correction and PyTorch's after; Keras's
SGD decays weights apart from the gradient, PyTorch's adds an L2 term to it; Keras's SGD keeps the
learning rate inside its velocity, PyTorch's applies the current rate to it; Keras's `clipnorm`
clips each variable, PyTorch's `clip_grad_norm_` their global norm. A spec states PyTorch's maths,
the convention most published recipes are written in; `nnzoo/torch_impl/training.py` builds
PyTorch's own classes from it, `nnzoo/keras_impl/training.py` Keras's own where the maths is the
same and a small Keras subclass with PyTorch's formula where it is not.

Everything here is plain Python and numpy, so a bad name, value or batch is refused before a
framework starts.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np

from nnzoo.errors import InputError, LabelError, SpecError, UnknownFieldError, close_matches
from nnzoo.specs.base import Spec, _coerce, _plain


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Settings:
    """Typed, validated, frozen and JSON-ready, like a model spec (errors name `label.field`)."""

    label: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(getattr(self, f.name), hints[f.name], f.name, self.label)
            object.__setattr__(self, f.name, value)
        for f in dataclasses.fields(self):  # NaN and infinity pass every comparison's negation
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                self.fail(f.name, "must be a finite number")
        self.validate()

    def validate(self) -> None:
        """Rules the types cannot state."""

    def fail(self, field: str, allowed: str) -> typing.NoReturn:
        raise SpecError(field, getattr(self, field, None), allowed, family=self.label)

    def require(self, ok: bool, field: str, allowed: str) -> None:
        if not ok:
            self.fail(field, allowed)

    def replace(self, **overrides: Any) -> Any:
        """A copy with `overrides` applied and validated; unknown fields are refused by name."""
        valid = [f.name for f in dataclasses.fields(self)]
        for key in overrides:
            if key not in valid:
                raise UnknownFieldError(key, valid, family=self.label)
        return dataclasses.replace(self, **overrides) if overrides else self

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScheduleSpec(_Settings):
    """The learning rate of each update, stepped once per update in both frameworks.

    constant: `lr` throughout. step: `lr * gamma ** (i // step_size)` (PyTorch `StepLR`, Keras
    `ExponentialDecay(staircase=True)`). cosine: from `lr` down to `min_lr` over `total_steps`
    updates (PyTorch `CosineAnnealingLR(T_max, eta_min)`, Keras `CosineDecay(decay_steps,
    alpha=min_lr / lr)`); `total_steps=None` means the run's own length. A cosine schedule ends
    there: PyTorch's rises again after `T_max`, Keras's holds the minimum, so a longer run is
    refused rather than left to disagree.
    """

    label: ClassVar[str] = "schedule"

    kind: Literal["constant", "step", "cosine"] = "constant"
    step_size: int = 10
    gamma: float = 0.1
    total_steps: int | None = None
    min_lr: float = 0.0

    def validate(self) -> None:
        self.require(self.step_size >= 1, "step_size", "must be >= 1 (updates per decay)")
        self.require(0.0 < self.gamma <= 1.0, "gamma", "must be in (0, 1] (the decay factor)")
        self.require(self.total_steps is None or self.total_steps >= 1, "total_steps",
                     "must be None (the run's length) or >= 1")
        self.require(self.min_lr >= 0.0, "min_lr", "must be >= 0")

    def horizon(self, steps: int) -> int:
        """The cosine schedule's length for a run of `steps` updates."""
        return self.total_steps or steps

    def check_run(self, steps: int, lr: float) -> None:
        """Refuse a run the two frameworks' schedules would not agree on."""
        if self.kind == "cosine":
            self.require(steps <= self.horizon(steps), "total_steps",
                         f"must be >= the run's {steps} steps: after total_steps PyTorch's "
                         "cosine rises again and Keras's stays at min_lr")
            self.require(self.min_lr < lr, "min_lr", f"must be below the learning rate {lr}")

    def lr(self, base: float, step: int, *, steps: int) -> float:
        """The learning rate of update `step` (0-based): the reference both builds follow."""
        if self.kind == "step":
            return base * self.gamma ** (step // self.step_size)
        if self.kind == "cosine":
            t = min(step, self.horizon(steps)) / self.horizon(steps)
            return self.min_lr + (base - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
        return base


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerSpec(_Settings):
    """An optimizer in PyTorch's maths (`torch.optim.SGD`, `Adam`, `AdamW`).

    sgd: `momentum` (0: plain SGD), `nesterov`, `weight_decay` added to the gradient as an L2
    term (PyTorch's; Keras's own is decoupled). adam: `betas`, `eps` added after the bias
    correction (PyTorch's; Keras's before), `weight_decay` as L2 in the gradient. adamw: the same,
    with `weight_decay` decoupled (`w *= 1 - lr * weight_decay` before the step; the same in
    both). `clip_norm`: the gradients' global norm is clipped to it before the step (PyTorch
    `clip_grad_norm_`; Keras `global_clipnorm`, not the per-variable `clipnorm`).
    """

    label: ClassVar[str] = "optimizer"

    kind: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_norm: float | None = None
    schedule: ScheduleSpec = dataclasses.field(default_factory=ScheduleSpec)

    def validate(self) -> None:
        self.require(self.lr > 0.0, "lr", "must be > 0")
        self.require(0.0 <= self.momentum < 1.0, "momentum", "must be in [0, 1)")
        if self.kind != "sgd":
            self.require(self.momentum == 0.0, "momentum",
                         f"is an SGD setting: {self.kind} takes its momentum from betas[0]")
            self.require(not self.nesterov, "nesterov", f"is an SGD setting, not {self.kind}'s")
        self.require(not self.nesterov or self.momentum > 0.0, "nesterov",
                     "needs momentum > 0 (PyTorch refuses Nesterov without momentum)")
        self.require(0.0 <= self.weight_decay < 1.0, "weight_decay", "must be in [0, 1)")
        self.require(all(0.0 <= b < 1.0 for b in self.betas), "betas", "both must be in [0, 1)")
        self.require(0.0 < self.eps < 1.0, "eps", "must be in (0, 1)")
        self.require(self.clip_norm is None or self.clip_norm > 0.0, "clip_norm",
                     "must be None (no clipping) or > 0")


#: The named optimizers: what `--optimizer NAME` and `optimizer="NAME"` mean.
OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec(kind="sgd", lr=0.01, momentum=0.9),
    "adam": OptimizerSpec(kind="adam", lr=1e-3),
    "adamw": OptimizerSpec(kind="adamw", lr=1e-3, weight_decay=1e-2),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LossSpec(_Settings):
    """cross_entropy: class logits (batch, classes) against integer labels (batch,).
    pixel_cross_entropy: per-pixel logits (batch, classes, H, W) against labels (batch, H, W).
    step_cross_entropy: per-step logits (batch, steps, classes) against labels (batch, steps).
    mse: any output against float targets of its shape. Both frameworks take logits (Keras is
    told `from_logits=True`; its default expects probabilities) and take the mean over every
    element (every pixel too). `reduction` has one value on purpose: Keras's "sum" of a mean
    squared error sums each example's mean, PyTorch's sums every squared error, so only the mean
    means the same in both."""

    label: ClassVar[str] = "loss"

    kind: Literal["cross_entropy", "pixel_cross_entropy", "step_cross_entropy", "mse"] = "cross_entropy"
    reduction: Literal["mean"] = "mean"

    @property
    def classification(self) -> bool:
        return self.kind != "mse"


LOSSES = ("cross_entropy", "pixel_cross_entropy", "step_cross_entropy", "mse")

#: The cross-entropy each kind of class output takes (`spec.output_kind` -> loss kind).
CROSS_ENTROPY = {"vector": "cross_entropy", "image": "pixel_cross_entropy",
                 "sequence": "step_cross_entropy"}


def _named(value: str, options: Any, what: str) -> None:
    if value not in options:
        near = close_matches(value, options)
        hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
        raise SpecError(what, value, f"one of {', '.join(map(repr, options))}{hint}")


def optimizer_spec(value: str | OptimizerSpec | Mapping[str, Any] | None = None,
                   **overrides: Any) -> OptimizerSpec:
    """A name in `OPTIMIZERS` ("sgd" is SGD with momentum 0.9), a spec or a dict -> a validated
    spec with `overrides` applied (`optimizer_spec("adamw", lr=3e-4)`)."""
    if value is None:
        value = "sgd"
    if isinstance(value, str):
        _named(value, OPTIMIZERS, "optimizer")
        spec = OPTIMIZERS[value]
    elif isinstance(value, OptimizerSpec):
        spec = value
    elif isinstance(value, Mapping):
        spec = OptimizerSpec().replace(**dict(value))
    else:
        raise SpecError("optimizer", value, f"a name ({', '.join(OPTIMIZERS)}), an OptimizerSpec "
                        "or a dict of its fields")
    return spec.replace(**overrides)


def default_loss(spec: Spec) -> LossSpec:
    """The loss a model's head calls for: per-pixel cross-entropy for per-pixel logits, per-step
    for per-step logits, cross-entropy for class logits, mean squared error for a feature output
    (num_classes=0)."""
    if spec.output_kind == "image" or getattr(spec, "num_classes", 0):
        return LossSpec(kind=CROSS_ENTROPY[spec.output_kind])  # type: ignore[arg-type]
    return LossSpec(kind="mse")


def loss_spec(value: str | LossSpec | Mapping[str, Any] | None, spec: Spec) -> LossSpec:
    """None or "auto" (the model's `default_loss`), a name, a spec or a dict -> a LossSpec that
    fits the model's output (else `SpecError`, naming the loss that would)."""
    if value is None or value == "auto":
        return default_loss(spec)
    if isinstance(value, str):
        _named(value, LOSSES, "loss")
        loss = LossSpec(kind=value)  # type: ignore[arg-type]
    elif isinstance(value, LossSpec):
        loss = value
    elif isinstance(value, Mapping):
        loss = LossSpec().replace(**dict(value))
    else:
        raise SpecError("loss", value, f"a name ({', '.join(LOSSES)}), a LossSpec or a dict")
    fits = spec.output_kind == "image" or getattr(spec, "num_classes", 0)
    if loss.classification and not (fits and CROSS_ENTROPY[spec.output_kind] == loss.kind):
        needs = {v: k for k, v in CROSS_ENTROPY.items()}[loss.kind]
        raise SpecError("loss", loss.kind, f"needs {_WORDS[needs]}, and this {spec.family} model "
                        f"returns {_output_words(spec)}: use {default_loss(spec).kind!r}")
    return loss


_WORDS = {"vector": "class logits", "image": "per-pixel logits", "sequence": "per-step logits"}


def _output_words(spec: Spec) -> str:
    if spec.output_kind == "image" or getattr(spec, "num_classes", 0):
        return _WORDS[spec.output_kind]
    return "features (num_classes=0)"


# ---- data ---------------------------------------------------------------------------------------
def check_batch(spec: Spec, loss: LossSpec, x: Any, y: Any) -> None:
    """Refuse inputs and targets the model and loss cannot train on, before any step.

    x: canonical layout (images NCHW), the spec's shape and dtype (token ids in [0, vocab)).
    y: integer class ids in [0, num_classes) of shape (batch,) -- (batch, H, W) per pixel,
    (batch, steps) per step -- or,
    for mse, floats of the output's shape. Raises `InputShapeError`, `InputDtypeError` or
    `LabelError`, each naming what was expected.
    """
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise InputError(f"training data must be numpy arrays (x, y); got {type(x).__name__}, "
                         f"{type(y).__name__}")
    spec.check_input_dtype(x.dtype)
    spec.check_input_shape(tuple(x.shape), channels_last=False)
    if len(x) == 0:
        raise InputError("training data is empty")
    if spec.input_kind == "tokens" and x.size and (x.min() < 0 or x.max() >= spec.vocab_size):
        raise InputError(f"token ids must be in [0, {spec.vocab_size}) (vocab_size); got ids "
                         f"from {x.min()} to {x.max()}")
    if spec.input_kind != "tokens" and not np.isfinite(x).all():
        raise InputError("training inputs contain NaN or infinity")
    n = len(x)
    if loss.classification:
        want, what = _label_shape(spec, loss, x)
        if y.dtype.kind not in "iu":
            raise LabelError(f"{loss.kind} needs integer {what}; got dtype {y.dtype}")
        if tuple(y.shape) != want:
            raise LabelError(f"{loss.kind} needs labels of shape {want} ({what}, one per "
                             f"{what.split()[-1] if len(want) > 1 else 'example'}); got "
                             f"{tuple(y.shape)}")
        classes = spec.num_classes  # type: ignore[attr-defined]
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise LabelError(f"labels must be class ids in [0, {classes}) (num_classes={classes});"
                             f" got labels from {y.min()} to {y.max()}")
        return
    want = tuple(spec.output_shape(n))
    if spec.output_kind == "image":
        want = (n, want[1], *x.shape[2:])
    if y.dtype.kind != "f":
        raise LabelError(f"mse needs floating-point targets; got dtype {y.dtype}")
    if tuple(y.shape) != want:
        raise LabelError(f"mse needs targets of the output's shape {want}; got {tuple(y.shape)}")
    if not np.isfinite(y).all():
        raise LabelError("mse targets contain NaN or infinity")


def _label_shape(spec: Spec, loss: LossSpec, x: Any) -> tuple[tuple[int, ...], str]:
    """The shape of the class ids `loss` takes for inputs `x`, and what they are."""
    n = len(x)
    if loss.kind == "pixel_cross_entropy":
        return (n, *x.shape[2:]), "class ids per pixel"
    if loss.kind == "step_cross_entropy":
        return (n, spec.output_shape(n)[1]), "class ids per step"
    return (n,), "class ids"


def synthetic_batch(spec: Spec, loss: LossSpec, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` seeded examples in canonical layout and targets for `loss`: uniform class ids, or
    standard-normal regression targets."""
    x = spec.example_input(n, seed)
    rng = np.random.default_rng(seed + 1)
    if loss.classification:
        shape, _ = _label_shape(spec, loss, x)
        return x, rng.integers(0, spec.num_classes, shape, dtype=np.int64)  # type: ignore[attr-defined]
    shape = tuple(spec.output_shape(n))
    if spec.output_kind == "image":
        shape = (n, shape[1], *x.shape[2:])
    return x, rng.standard_normal(shape)


#: Spec fields that make a layer stochastic in training (dropout, stochastic depth): set to 0
#: wherever two builds must take the same step.
STOCHASTIC = ("dropout", "drop_path", "drop_rate", "stochastic_depth")


def stochastic_fields(spec: Spec) -> dict[str, float]:
    """The spec's stochastic fields (see `STOCHASTIC`) and their values."""
    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)
            if any(word in f.name for word in STOCHASTIC)
            and isinstance(getattr(spec, f.name), float)}


def deterministic(spec: Spec) -> Spec:
    """`spec` with every stochastic layer off: training steps are then the same function in
    both frameworks (their random streams cannot agree)."""
    return spec.replace(**{name: 0.0 for name in stochastic_fields(spec)})
