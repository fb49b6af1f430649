"""Backend names, their packages, and the one dispatch from a spec to a native build.

Everything here decides *before* importing a framework, so a missing package or a bad name is
reported in milliseconds with the command that fixes it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from nnzoo import guard
from nnzoo.errors import BackendError, BackendNotInstalledError, KerasBackendError, NnzooError
from nnzoo.specs.base import Spec

#: backend -> (packages it needs, the pip extra that installs them)
BACKENDS: dict[str, tuple[tuple[str, ...], str]] = {
    "torch": (("torch",), "torch"),
    "keras": (("keras",), "keras"),
}

#: Keras 3's own backends -> (packages each needs, the nnzoo extra that installs them)
KERAS_BACKENDS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorflow": (("tensorflow",), "keras-tensorflow"),
    "jax": (("jax", "jaxlib"), "keras-jax"),
    "torch": (("torch",), "keras-torch"),
}


def keras_backend() -> str:
    """The Keras backend this process runs (or will run), decided as Keras decides it.

    Once Keras is imported, its own answer; before, `KERAS_BACKEND`, then the `backend` entry of
    Keras's config file (`$KERAS_HOME/keras.json`, default `~/.keras/keras.json`), then Keras's
    default, TensorFlow. Nothing is imported.
    """
    if "keras" in sys.modules:
        import keras

        return str(keras.backend.backend())
    name = os.environ.get("KERAS_BACKEND")
    if not name:
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
        try:
            with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
                name = json.load(f).get("backend")
        except (OSError, ValueError, AttributeError):
            name = None
    return name or "tensorflow"


def use_keras_backend(name: str) -> str:
    """Choose the Keras backend for this process, before Keras is imported.

    Keras picks its backend once per process, at import: asking for another one afterwards
    raises `KerasBackendError` (start a new process with `KERAS_BACKEND=<name>`) instead of
    silently building on the backend already loaded.
    """
    if name not in KERAS_BACKENDS:
        raise BackendError(f"keras/{name}", [f"keras/{k}" for k in KERAS_BACKENDS])
    if "keras" in sys.modules and keras_backend() != name:
        raise KerasBackendError(name, keras_backend())
    os.environ["KERAS_BACKEND"] = name
    return name


def available_backends() -> list[str]:
    """The backends whose packages are importable here (checked without importing them).

    "keras" counts only when the active Keras backend's packages are installed too; see
    `keras_backend()` for which one that is.
    """
    found = [b for b, (pkgs, _) in BACKENDS.items() if all(_installed(p) for p in pkgs)]
    if "keras" in found:
        active = keras_backend()
        needs = KERAS_BACKENDS.get(active, ((active,), ""))[0]
        if not all(_installed(p) for p in needs):
            found.remove("keras")
    return found


def _installed(package: str) -> bool:
    return package in sys.modules or importlib.util.find_spec(package) is not None


#: Held by every framework import and every build. A first import of TensorFlow (or Keras, or
#: torch) from several threads at once deadlocks or leaves modules half-initialised, and float64
#: work flips process-wide switches (`float64_scope`: JAX's x64 mode). Seeded builds draw
#: from private streams (each backend's `rng.py`), so they do not need it for their weights.
#: Builds spend their time in Python holding the GIL, so serialising them costs little.
#: Reentrant: a build may import, and a check may build inside a build.
FRAMEWORK_LOCK = threading.RLock()
_keras_imported = threading.Event()  # set once Keras is fully imported (no lock needed after)


def require(backend: object) -> str:
    """Validate a backend name and that its packages are installed; return the name.

    For "keras", the packages of the active Keras backend are checked too, and Keras is imported
    (TensorFlow first and quietly, when that is the backend), under a lock: a first import from
    several threads at once would deadlock.
    """
    if backend not in BACKENDS:
        raise BackendError(backend, BACKENDS)
    packages, extra = BACKENDS[backend]  # type: ignore[index]
    for package in packages:
        if not _installed(package):
            raise BackendNotInstalledError(backend, package, extra)  # type: ignore[arg-type]
    if backend == "keras" and not _keras_imported.is_set():
        with FRAMEWORK_LOCK:  # another thread may be half-way through importing Keras: wait
            if "keras" not in sys.modules:
                active = keras_backend()
                if active not in KERAS_BACKENDS:
                    raise BackendError(f"keras/{active}", [f"keras/{k}" for k in KERAS_BACKENDS])
                needs, keras_extra = KERAS_BACKENDS[active]
                for package in needs:
                    if not _installed(package):
                        raise BackendNotInstalledError(f"keras/{active}", package, keras_extra)
                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
                if active == "tensorflow":
                    _import_tensorflow_quietly()
            import keras  # noqa: F401
            _keras_imported.set()
    return backend  # type: ignore[return-value]


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter (oneDNN, CUDA-stub notices) silenced.

    Those lines are written to file descriptor 2 before TensorFlow's logging is set up, so no
    environment variable reaches them. Python-level errors are raised as usual, after the
    descriptor is restored.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def float64_scope() -> Iterator[None]:
    """Let the active Keras backend compute in float64 for the duration of the block.

    Two things stand in the way on Keras's JAX and PyTorch backends, and both are lifted here
    and restored afterwards, so a float64 check really computes in float64 and the rest of the
    process keeps the defaults:
    - JAX truncates every float64 array to float32 unless its `jax_enable_x64` flag is on;
    - Keras's type promotion maps a float64 result to float32 on every backend but TensorFlow
      (`keras.backend.result_type("float64", "float64") == "float32"`, "aligned with JAX's
      default"), so a float64 Dense layer on the PyTorch backend multiplies in float32
      (measured: 1e-6 relative). Its table `BIT64_TO_BIT32_DTYPE` is private to Keras; if a
      Keras release renames it, float64 checks fall back to float32-level agreement and the
      test `test_float64_is_really_float64` says so.
    """
    active = keras_backend()
    if active == "tensorflow":
        yield
        return
    require("keras")
    with FRAMEWORK_LOCK:  # both switches are process-wide: no other build runs meanwhile
        yield from _float64_switches(active)


def _float64_switches(active: str) -> Iterator[None]:
    """The body of `float64_scope`: lift both switches, restore them after."""
    from keras.src.backend.common import dtypes

    table = getattr(dtypes, "BIT64_TO_BIT32_DTYPE", {})
    demoted = table.get("float64")
    if demoted is not None:
        table["float64"] = "float64"
    x64 = None
    if active == "jax":
        import jax

        x64 = bool(jax.config.jax_enable_x64)
        jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        if demoted is not None:
            table["float64"] = demoted
        if x64 is not None:
            import jax

            jax.config.update("jax_enable_x64", x64)


def impl(backend: str, family: str) -> Any:
    """The module `nnzoo.<backend>_impl.<family>` (imports the framework)."""
    return importlib.import_module(f"nnzoo.{backend}_impl.{family}")


_F = TypeVar("_F", bound=Callable[..., Any])


def _serialized(fn: _F) -> _F:
    """Run `fn` holding FRAMEWORK_LOCK."""

    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with FRAMEWORK_LOCK:
            return fn(*args, **kwargs)

    return locked  # type: ignore[return-value]


impl = _serialized(impl)  # importing a family's module imports its framework


@contextlib.contextmanager
def seeded(backend: str, seed: int | None) -> Iterator[None]:
    """Make weight initialisation reproducible under `seed`: PyTorch's from a private generator,
    Keras's from a private numpy stream (see each backend's `rng.py`). Under None, each
    framework's global seed decides, as in its own builds (`torch.manual_seed`,
    `keras.utils.set_random_seed`)."""
    rng = impl(backend, "rng")
    with rng.unseeded() if seed is None else rng.seeded(seed):
        yield


@contextlib.contextmanager
def placeholders(backend: str) -> Iterator[list[Any]]:
    """Zeros for every initial value a build inside the block would draw, for a build whose
    weights are all loaded next; yields what was zeroed (see each backend's `rng.py`)."""
    require(backend)
    with impl(backend, "rng").placeholders() as zeroed:
        yield zeroed


@_serialized
def build_native(spec: Spec, backend: str, seed: int | None = None, dtype: str = "float32") -> Any:
    """Build `spec` as a native model of `backend`, its weights in `dtype`.

    float64 builds exist for the numeric parity check, where they take float32 rounding out of
    the comparison.
    """
    require(backend)
    module = impl(backend, spec.family)
    guard.check(spec, what=f"a {dtype} {backend} build of {spec.family}", dtype=dtype,
                backend=backend)
    with seeded(backend, seed):
        if backend == "torch":
            return module.build(spec).to(getattr(__import__("torch"), dtype))
        import keras

        if dtype == "float64" and keras_backend() == "jax":
            import jax

            if not jax.config.jax_enable_x64:
                raise NnzooError("a float64 Keras build on JAX needs JAX's x64 mode: build it "
                                 "inside `nnzoo.backends.float64_scope()`")
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(dtype)
        try:
            return module.build(spec)
        finally:
            keras.config.set_dtype_policy(previous)


def backend_of(model: Any) -> str:
    """'torch' or 'keras' for a model of either backend (imports nothing new).

    Keras is asked first: on Keras's PyTorch backend a Keras model is a `torch.nn.Module` too.
    """
    if "keras" in sys.modules:
        import keras

        if isinstance(model, keras.Model | keras.layers.Layer):
            return "keras"
    if "torch" in sys.modules:
        import torch

        if isinstance(model, torch.nn.Module):
            return "torch"
    raise TypeError(f"expected a torch.nn.Module or a keras.Model, got {type(model).__name__}")


def spec_of(model: Any) -> Spec:
    """The spec a model was built from (nnzoo builds carry it as `.spec`)."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, Spec):
        raise TypeError(f"{type(model).__name__} was not built by nnzoo: it carries no spec")
    return spec
