"""Seeded Keras builds: every initial value drawn by nnzoo from a private numpy stream.

Keras's random initialisers take their seeds from Python's global `random` (one per initialiser,
when it is created) and draw on the backend; on JAX each new weight shape then costs an XLA
compilation (0.2-0.5 s each, measured: most of a first build's time). A seeded build here
creates its variables deferred (`keras.StatelessScope(initialize_variables=False)`), then gives
each its first value from one `numpy.random.Generator` seeded for the build, in creation order:
the initialiser's own distribution with Keras's formulas (variance scaling over Keras's fans,
orthogonal, normal, uniform, truncated normal), its fixed value (zeros, ones, constants), a fresh
seed for each dropout stream (`seed_generator_state`), or -- for an initialiser not listed here
-- Keras's own draw with a seed from the same stream. So a seeded build
- takes no value from a global generator: threads building at once each get their own
  weights (Keras still draws each initialiser's unused default seed from Python's `random`
  when a layer is made, as in any Keras build);
- gives the same weights on every Keras backend (the numbers are numpy's), in float32 and
  float64 alike up to rounding;
- compiles nothing on JAX.
The distributions are Keras's defaults (Glorot-uniform kernels, zero biases, orthogonal
recurrent kernels), as its own initialisers draw them; only the stream differs.
`nnzoo/torch_impl/rng.py` is the PyTorch twin (a private `torch.Generator`).

An unseeded build (`unseeded`, and every `.keras` file's load) is a seeded one whose seed comes
from Python's global `random`, the generator Keras's own initialisers take their seeds from: so
`keras.utils.set_random_seed` makes it repeat, as it does a Keras build, and on JAX it compiles
nothing either.

`placeholders` defers the same way but draws nothing: zeros, for a build whose every weight is
loaded next (`nnzoo.convert`), which then checks that each zero was replaced.

Keras has no public hook for this: the deferred variables' `_initializer` and
`_deferred_initialize` are Keras 3's own private names (`tests/test_rng.py` fails if they move).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
from keras import initializers
from keras.src.backend.common import global_state
from keras.src.backend.common.stateless_scope import in_stateless_scope
from keras.src.initializers.random_initializers import RandomInitializer, compute_fans

#: Keras's truncated normal re-draws beyond two standard deviations; this is the standard
#: deviation of a unit normal so truncated (Keras divides by it in VarianceScaling).
_TRUNCATED_STD = 0.87962566103423978


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Variables created inside the block get their first values from a numpy stream seeded
    with `seed`, in creation order (see the module docstring); no global generator decides them."""
    rng = np.random.default_rng(seed)
    with _deferred(lambda variable: _first_value(variable, rng)):
        yield


@contextlib.contextmanager
def unseeded() -> Iterator[None]:
    """`seeded` under a seed drawn from Python's global `random` (which Keras's initialisers draw
    their seeds from, and `keras.utils.set_random_seed` seeds). Why not Keras's own draws: on JAX
    each new weight shape's draw is an XLA compilation (loading U-Net's smallest `.keras` file
    took 25 s, nearly all of it compiling draws whose values the loading then overwrote). Inside
    a StatelessScope already open (a seeded build's, or the caller's), that scope decides."""
    if in_stateless_scope():
        yield
        return
    with seeded(random.getrandbits(64)):
        yield


@contextlib.contextmanager
def placeholders() -> Iterator[list[Any]]:
    """Variables created inside the block start as zeros, drawn from no distribution, for a
    build whose every weight is loaded at once (`nnzoo.convert`); yields the list of them, for
    the caller to check that each was loaded. A dropout stream's seed is Keras's own, as in an
    unseeded build. Why: on JAX each new weight shape's draw is an XLA compilation (0.6 s: 37 of
    the 40 s that converting the eleven families' smallest models to Keras took, first time in
    a process), to make values that the loading overwrites."""
    zeroed: list[Any] = []

    def zeros(variable: Any) -> Any:
        if variable.name == "seed_generator_state":
            return None
        zeroed.append(variable)
        return _in_dtype(np.zeros(tuple(variable.shape)), variable.dtype)

    with _deferred(zeros):
        yield zeroed


@contextlib.contextmanager
def _deferred(first_value: Any) -> Iterator[None]:
    """Variables created inside the block get `first_value(variable)` as their first value,
    in creation order (None: their own initialiser's), not a draw made when each is created."""
    before = list(_pending())
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    except BaseException:
        _forget(before)
        raise
    known = {id(v) for v in before}
    created = [v for v in _pending() if id(v) not in known]
    # Inside a StatelessScope of the caller's, it initialises them (with these values) when it
    # ends; else each is initialised at once, so that one variable's numpy copy is alive at a
    # time (a build's peak stays its weights, not twice them).
    now = not in_stateless_scope()
    if now:
        _forget(before)
    for variable in created:
        if not isinstance(variable._initializer, _Fixed):  # else drawn by a nested seeded build
            value = first_value(variable)
            if value is not None:
                variable._initializer = _Fixed(value)
        if now:
            variable._deferred_initialize()


def _pending() -> list[Any]:
    """This thread's variables awaiting their first value (Keras keeps the list per thread)."""
    return global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)


def _forget(before: list[Any]) -> None:
    """Leave only `before` in the list (a build that failed or is initialised here)."""
    global_state.set_global_attribute("uninitialized_variables", before)


class _Fixed:
    """An initialiser that returns the value nnzoo drew for its variable."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, shape: Any = None, dtype: Any = None) -> Any:
        return self.value


def _first_value(variable: Any, rng: np.random.Generator) -> Any:
    """The variable's first value: numpy's draw from its initialiser's distribution, in its
    dtype; Keras's own draw (seeded from `rng`) for an initialiser not listed here."""
    init, shape, dtype = variable._initializer, tuple(variable.shape), variable.dtype
    value = _draw(init, shape, rng)
    if value is None and variable.name == "seed_generator_state":
        value = np.array([rng.integers(1, 10**9), 0])  # a dropout layer's stream
    if value is not None:
        return _in_dtype(value, dtype)
    if isinstance(init, RandomInitializer):
        init = type(init).from_config({**init.get_config(), "seed": int(rng.integers(2**31))})
    return init(shape, dtype=dtype)


def _in_dtype(value: np.ndarray, dtype: Any) -> Any:
    try:  # C order: a transposed view keeps its strides on Keras's torch backend, and a
        # strided kernel rounds differently from the same weights loaded from a file
        return np.ascontiguousarray(value, dtype=np.dtype(dtype))
    except TypeError:  # a dtype numpy does not name (bfloat16): the backend casts
        return keras.ops.cast(np.asarray(value, np.float32), dtype)


def _draw(init: Any, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray | None:
    """Keras's formula for `init`, drawn by numpy in float64; None for one not listed."""
    if isinstance(init, initializers.Zeros):
        return np.zeros(shape)
    if isinstance(init, initializers.Ones):
        return np.ones(shape)
    if isinstance(init, initializers.Constant) and np.ndim(init.value) == 0:
        return np.full(shape, float(init.value))
    if isinstance(init, initializers.VarianceScaling):
        fan_in, fan_out = compute_fans(shape, input_axes=init.input_axes,
                                       output_axes=init.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out}.get(init.mode, (fan_in + fan_out) / 2.0)
        scale = init.scale / max(1.0, fan)
        if init.distribution == "truncated_normal":
            return _truncated(rng, shape, 0.0, math.sqrt(scale) / _TRUNCATED_STD)
        if init.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(scale), shape)
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, shape)
    if isinstance(init, initializers.Orthogonal):
        rows, cols = math.prod(shape[:-1]), shape[-1]
        q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        return init.gain * (q.T if rows < cols else q).reshape(shape)
    if isinstance(init, initializers.RandomNormal):
        return rng.normal(init.mean, init.stddev, shape)
    if isinstance(init, initializers.TruncatedNormal):
        return _truncated(rng, shape, init.mean, init.stddev)
    if isinstance(init, initializers.RandomUniform):
        return rng.uniform(init.minval, init.maxval, shape)
    return None


def _truncated(rng: np.random.Generator, shape: tuple[int, ...], mean: float,
               std: float) -> np.ndarray:
    """Normal values, each beyond two standard deviations drawn again (as Keras does)."""
    x = rng.standard_normal(shape)
    while (far := np.abs(x) > 2.0).any():
        x[far] = rng.standard_normal(int(far.sum()))
    return mean + std * x
