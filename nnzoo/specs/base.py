"""The spec base class: a frozen, typed, keyword-only dataclass that validates itself.

A spec is the one description both backends build from. It is checked completely when it is
created -- types from the annotations, then the family's own rules -- so that no framework is
ever imported for a spec that cannot be built.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np

from nnzoo.errors import MissingFieldError, SpecError, UnknownFieldError

#: What a model eats and what it returns, in canonical (PyTorch) layout, batch first.
#: image: (N, C, H, W) float -- Keras receives (N, H, W, C)
#: vector: (N, F) float; sequence: (N, T, F) float; tokens: (N, T) int64 ids
IOKind = Literal["image", "vector", "sequence", "tokens"]

#: Activations every family may name; both backends implement each one explicitly.
Activation = Literal["relu", "gelu", "gelu_tanh", "silu", "tanh"]


#: Rules of the shared field names (DESIGN.md), stated once: every spec with such a field gets
#: its rule before the family's own `validate()`. "positive": an int (or each int of a tuple)
#: >= 1; "fraction": in [0, 1); "eps": in (0, 1); "momentum": in (0, 1), PyTorch's convention.
SHARED_RULES: dict[str, str] = {
    **dict.fromkeys(("in_channels", "image_size", "input_size", "hidden_sizes", "hidden_size",
                     "num_layers", "embed_dim", "depth", "num_heads", "mlp_dim", "patch_size",
                     "vocab_size", "base_width", "seq_len"), "positive"),
    **dict.fromkeys(("dropout", "attention_dropout", "head_dropout"), "fraction"),
    **dict.fromkeys(("bn_eps", "ln_eps", "gn_eps"), "eps"),
    "bn_momentum": "momentum",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Spec:
    """Base of every family's spec. Subclasses set `family`, add typed fields, and say what they
    return: `pooled_width` (or `features`) for a classifier, or their own `output_shape`."""

    family: ClassVar[str] = ""

    #: The smallest `num_classes` the family takes. 0 means no head: the model returns its
    #: `features`-wide vector. A family with nothing to pool (per-pixel logits) sets 1.
    min_classes: ClassVar[int] = 0

    # ---- validation -------------------------------------------------------------------------
    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(getattr(self, f.name), hints[f.name], f.name, self.family)
            object.__setattr__(self, f.name, value)
        self.validate_shared()
        self.validate()

    def validate_shared(self) -> None:
        """The rules every family shares: `SHARED_RULES` for the shared field names it has, and
        `num_classes >= min_classes`. Bases for kinds of input extend this (`super()` first)."""
        checks = {"positive": self.require_positive, "fraction": self.require_fraction,
                  "eps": self.require_eps, "momentum": self.require_momentum}
        for name in self.field_names():
            rule = SHARED_RULES.get(name)
            if rule is not None and _numeric(getattr(self, name)):
                checks[rule](name)
        if "num_classes" in self.field_names():
            least = self.min_classes
            allowed = (f"must be >= {least}" if least else
                       "must be >= 0 (0: no head; the model returns its pooled features)")
            self.require(self.num_classes >= least, "num_classes", allowed)

    def validate(self) -> None:
        """Family rules that types and the shared rules cannot state; raise `SpecError` (see
        `self.fail`)."""

    def fail(self, field: str, allowed: str) -> typing.NoReturn:
        """Raise the `SpecError` for `field`, showing its current value."""
        raise SpecError(field, getattr(self, field, None), allowed, family=self.family)

    def require(self, ok: bool, field: str, allowed: str) -> None:
        if not ok:
            self.fail(field, allowed)

    def require_positive(self, *fields: str) -> None:
        """Each field (an int, or a tuple of ints) must be >= 1."""
        for name in fields:
            value = getattr(self, name)
            values = value if isinstance(value, tuple) else (value,)
            self.require(all(v >= 1 for v in values), name, "must be >= 1")

    def require_fraction(self, *fields: str) -> None:
        """Each field must be a probability in [0, 1) (dropout rates, say)."""
        for name in fields:
            self.require(0.0 <= getattr(self, name) < 1.0, name, "must be in [0, 1)")

    def require_eps(self, *fields: str) -> None:
        for name in fields:
            self.require(0.0 < getattr(self, name) < 1.0, name, "must be in (0, 1)")

    def require_momentum(self, name: str = "bn_momentum") -> None:
        self.require(
            0.0 < getattr(self, name) < 1.0,
            name,
            "must be in (0, 1), in PyTorch's convention (new-statistics weight; Keras gets 1 - m)",
        )

    # ---- overrides and serialization ----------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def replace(self, **overrides: Any) -> Spec:
        """A copy with `overrides` applied and validated; unknown fields are refused by name."""
        valid = self.field_names()
        for key in overrides:
            if key not in valid:
                raise UnknownFieldError(key, valid, family=self.family)
        return dataclasses.replace(self, **overrides) if overrides else self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that carries its family; `spec_from_dict` inverts it exactly."""
        return {"family": self.family, **_plain(self)}

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Spec:
        """Build from a field mapping (no `family` key); unknown keys are refused by name."""
        _check_keys(cls, data, "", cls.family)
        return cls(**dict(data))

    # ---- input and output ---------------------------------------------------------------------
    @property
    def input_kind(self) -> IOKind:
        raise NotImplementedError

    @property
    def output_kind(self) -> IOKind:
        """`image` for per-pixel outputs (compared after NHWC -> NCHW), `vector` otherwise."""
        return "vector"

    def input_shape(self) -> tuple[int, ...]:
        """The canonical shape of one example, without the batch axis."""
        raise NotImplementedError

    def example_input(self, batch: int = 2, seed: int = 0) -> np.ndarray:
        """A small deterministic float32 input in canonical layout (`TokenSpec`: token ids)."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((batch, *self.input_shape())).astype(np.float32)

    @property
    def pooled_width(self) -> int:
        """Width of the vector the classifier layers start from: the pooled features, a
        recurrent summary, an MLP's input."""
        raise NotImplementedError(
            f"{type(self).__name__} defines neither `pooled_width` nor `features`")

    @property
    def features(self) -> int:
        """Width of the vector the head reads, returned as-is when num_classes=0: the last of
        `hidden_sizes` (the classifier's hidden layers) where the family has them, else
        `pooled_width`."""
        hidden = getattr(self, "hidden_sizes", ())
        return hidden[-1] if hidden else self.pooled_width

    def output_shape(self, batch: int = 2) -> tuple[int, ...]:
        """The canonical output shape; the parity check compares both builds against it.
        A classifier's: (batch, num_classes), or (batch, features) without a head."""
        return (batch, self.num_classes or self.features)

    def check_input_shape(self, shape: tuple[int | None, ...], *, channels_last: bool) -> None:
        """Refuse an input the model cannot take, naming the expected shape.

        `None` (a symbolic dimension) matches anything; so does a symbolic size on a free axis
        (JAX's export traces with symbols that cannot be compared with a number). Free axes come
        from `flexible_axes` (an image family's `flexible_size`; a token family's time axis), not
        from overriding this method.
        """
        from nnzoo.errors import InputShapeError

        want = list(self.input_shape())
        if self.input_kind == "image" and channels_last:
            want = [*want[1:], want[0]]
        free = self.flexible_axes(channels_last=channels_last)
        expected = tuple("*" if i in free else w for i, w in enumerate(want))
        got = tuple(shape)
        least = self.min_side
        ok = len(got) == len(want) + 1 and all(
            g is None or ((least == 1 or not isinstance(g, numbers.Integral) or g >= least) if i in free
                          else g == w)
            for i, (g, w) in enumerate(zip(got[1:], want))
        )
        if not ok:
            layout = " (NHWC)" if channels_last and self.input_kind == "image" else ""
            sizes = f", * any size >= {least}" if free and least > 1 else ""
            raise InputShapeError(
                f"{self.family} expects input of shape (batch, {', '.join(map(str, expected))})"
                f"{layout}{sizes}; got {got}"
            )

    def check_input_dtype(self, dtype: Any) -> None:
        """Token ids must be integers; everything else floating point (any width: it is cast)."""
        from nnzoo.errors import InputDtypeError

        name = str(getattr(dtype, "name", dtype)).replace("torch.", "")
        integer = name.startswith(("int", "uint"))
        floating = name.startswith(("float", "bfloat"))
        if self.input_kind == "tokens" and not integer:
            raise InputDtypeError(f"{self.family} expects integer token ids; got dtype {name}")
        if self.input_kind != "tokens" and not floating:
            raise InputDtypeError(
                f"{self.family} expects a floating-point input (cast it first; nnzoo does no "
                f"rescaling); got dtype {name}"
            )

    def quick(self) -> Spec:
        """The same layers with a smaller example input, for checks that only need every layer to
        run (numeric parity of the heavy models, say). By default the spec itself."""
        return self

    def flexible_axes(self, *, channels_last: bool) -> set[int]:
        """Axes (of one example, no batch) whose size the model does not fix."""
        return set()

    @property
    def min_side(self) -> int:
        """The smallest size a free axis takes: 1, unless the family's strides need more."""
        return 1


class ImageSpec(Spec):
    """Base of the image families: input (in_channels, *image_size), NCHW canonical, NHWC in Keras.

    Subclasses declare the `in_channels` and `image_size` fields themselves (with their own
    defaults); this class adds no field, only the input description they share. A family whose
    height and width are free sets `flexible_size = True` (a property where it depends on the
    spec); `image_size` then only sizes example inputs.
    """

    in_channels: int
    image_size: tuple[int, int]

    #: Whether any height and width work (global pooling), or the build fixes them (a flatten
    #: before a dense layer, a position table).
    flexible_size: ClassVar[bool] = False

    @property
    def input_kind(self) -> IOKind:
        return "image"

    def input_shape(self) -> tuple[int, ...]:
        return (self.in_channels, *self.image_size)

    def flexible_axes(self, *, channels_last: bool) -> set[int]:
        if not self.flexible_size:
            return set()
        return {0, 1} if channels_last else {1, 2}


class TokenSpec(Spec):
    """Base of the families that read token ids, (batch, time) int64, padded at the end.

    Subclasses declare the `vocab_size`, `padding_idx` (None: no padding) and `seq_len` fields
    themselves; this class adds the rules and the example input they share. `seq_len` only sizes
    example inputs: any sequence length is accepted.
    """

    vocab_size: int
    padding_idx: int | None
    seq_len: int

    def validate_shared(self) -> None:
        super().validate_shared()
        if self.padding_idx is not None:
            self.require(0 <= self.padding_idx < self.vocab_size, "padding_idx",
                         f"must be None or in [0, vocab_size={self.vocab_size})")
            self.require(self.vocab_size >= 2, "vocab_size",
                         "must be >= 2 with a padding id (one id is padding)")

    @property
    def input_kind(self) -> IOKind:
        return "tokens"

    @property
    def masked(self) -> bool:
        """Whether padding is read from the input (token ids, with a padding id)."""
        return self.input_kind == "tokens" and self.padding_idx is not None

    def example_input(self, batch: int = 2, seed: int = 0) -> np.ndarray:
        """Uniform ids in [0, vocab_size) other than the padding id (so an example is never
        padded), as int64; a family reading features here too gets floats."""
        if self.input_kind != "tokens":
            return super().example_input(batch, seed)
        rng = np.random.default_rng(seed)
        shape = (batch, *self.input_shape())
        if self.padding_idx is None:
            return rng.integers(0, self.vocab_size, size=shape, dtype=np.int64)
        ids = rng.integers(0, self.vocab_size - 1, size=shape, dtype=np.int64)
        return ids + (ids >= self.padding_idx)

    def flexible_axes(self, *, channels_last: bool) -> set[int]:
        """Any sequence length works; `seq_len` only sizes example inputs."""
        return {0}


def _numeric(value: Any) -> bool:
    """A number or a tuple of numbers (a shared rule is not applied to None or strings)."""
    values = value if isinstance(value, tuple) else (value,)
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


# ---- helpers: typed coercion from Python/JSON values ----------------------------------------
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        inner = _describe(args[0]) if args else "values"
        return f"a sequence of {inner}" if args and args[-1] is Ellipsis else "a tuple"
    if tp is type(None):
        return "None"
    if dataclasses.is_dataclass(tp):
        return f"a {tp.__name__} mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, field: str, family: str) -> Any:
    """Check `value` against annotation `tp`; JSON lists become tuples, dicts nested specs."""
    bad = SpecError(field, value, f"expected {_describe(tp)}", family=family)
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if any(type(value) is type(a) and value == a for a in typing.get_args(tp)):
            return value
        raise bad
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, field, family)
            except SpecError:
                continue
        raise bad
    if origin is tuple:
        args = typing.get_args(tp)
        if args and args[-1] is Ellipsis:
            if not isinstance(value, list | tuple):
                raise bad
            return tuple(_coerce(v, args[0], f"{field}[{i}]", family) for i, v in enumerate(value))
        if isinstance(value, int) and not isinstance(value, bool) and all(a is int for a in args):
            value = (value,) * len(args)  # an int where an int pair is expected: a square
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise bad
        return tuple(_coerce(v, a, f"{field}[{i}]", family) for i, (v, a) in enumerate(zip(value, args)))
    if tp is type(None):
        if value is None:
            return None
        raise bad
    if tp is bool:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        raise bad
    if tp is int:
        if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
            return int(value)
        raise bad
    if tp is float:
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            _check_keys(tp, value, f"{field}.", family)
            try:
                return tp(**value)
            except SpecError as exc:  # name the part by its place in the spec: stages[1].kernel
                if type(exc) is not SpecError:
                    raise
                raise SpecError(f"{field}.{exc.field}", exc.value, exc.allowed, family=family) from None
        raise bad
    raise TypeError(f"nnzoo cannot check annotation {tp!r} of field {field!r}")


def _check_keys(cls: Any, data: Mapping[Any, Any], prefix: str, family: str) -> None:
    """Refuse a key `cls` does not have, or a missing field that has no default, by name."""
    valid = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in valid:
            raise UnknownFieldError(f"{prefix}{key}", valid, family=family)
    for f in dataclasses.fields(cls):
        if f.name not in data and f.default is dataclasses.MISSING \
                and f.default_factory is dataclasses.MISSING:
            expected = f"expected {_describe(_hints(cls)[f.name])}"
            raise MissingFieldError(f"{prefix}{f.name}", expected, family=family)


def _plain(obj: Any) -> Any:
    """Dataclasses and tuples as JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    return obj


@dataclasses.dataclass(frozen=True, kw_only=True)
class Part:
    """Base of nested spec parts (a conv stage, say): typed and validated like a spec."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(getattr(self, f.name), hints[f.name], f.name, type(self).__name__)
            object.__setattr__(self, f.name, value)
