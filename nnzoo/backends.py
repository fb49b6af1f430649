"""Backend names, their packages, and the one dispatch from a spec to a native build.

Everything here decides *before* importing a framework, so a missing package or a bad name is
reported in milliseconds with the command that fixes it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from nnzoo import guard
from nnzoo.errors import BackendError, BackendNotInstalledError
from nnzoo.specs.base import Spec

#: backend -> (packages it needs, the pip extra that installs them)
BACKENDS: dict[str, tuple[tuple[str, ...], str]] = {
    "torch": (("torch",), "torch"),
    "keras": (("keras", "tensorflow"), "keras"),
}


def available_backends() -> list[str]:
    """The backends whose packages are importable here (checked without importing them)."""
    return [b for b, (pkgs, _) in BACKENDS.items() if all(_installed(p) for p in pkgs)]


def _installed(package: str) -> bool:
    return package in sys.modules or importlib.util.find_spec(package) is not None


def require(backend: object) -> str:
    """Validate a backend name and that its packages are installed; return the name."""
    if backend not in BACKENDS:
        raise BackendError(backend, BACKENDS)
    packages, extra = BACKENDS[backend]  # type: ignore[index]
    for package in packages:
        if not _installed(package):
            raise BackendNotInstalledError(backend, package, extra)  # type: ignore[arg-type]
    if backend == "keras":
        # nnzoo's Keras builds are tested on the TensorFlow backend; say so rather than guess.
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        _import_tensorflow_quietly()
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


def impl(backend: str, family: str) -> Any:
    """The module `nnzoo.<backend>_impl.<family>` (imports the framework)."""
    return importlib.import_module(f"nnzoo.{backend}_impl.{family}")


#: Held by every framework import and every build. A first import of TensorFlow (or Keras, or
#: torch) from several threads at once deadlocks or leaves modules half-initialised; and builds
#: draw their initial weights from process-wide generators (torch's default generator, Python's
#: `random` for Keras's initializer seeds), so a seeded build is reproducible only if no other
#: build draws in the meantime. Builds spend their time in Python holding the GIL, so serialising
#: them costs little. Reentrant: a build may import, and a check may build inside a build.
FRAMEWORK_LOCK = threading.RLock()

_F = TypeVar("_F", bound=Callable[..., Any])


def _serialized(fn: _F) -> _F:
    """Run `fn` holding FRAMEWORK_LOCK."""

    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with FRAMEWORK_LOCK:
            return fn(*args, **kwargs)

    return locked  # type: ignore[return-value]


require = _serialized(require)  # the first import of a framework happens there
impl = _serialized(impl)


@contextlib.contextmanager
def seeded(backend: str, seed: int | None) -> Iterator[None]:
    """Make weight initialisation reproducible under `seed` (no-op for None)."""
    if seed is None:
        yield
        return
    if backend == "torch":
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    else:
        # What keras.utils.set_random_seed seeds, minus TensorFlow's global seed (which would
        # import TensorFlow on the JAX and PyTorch backends, and which Keras's initializers do not
        # read: their seeds come from Python's `random`); the caller's states are restored after.
        import keras
        import numpy as np

        states = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(seed)
        try:
            if keras.backend.backend() == "torch":
                import torch

                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    yield
            else:
                yield
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])


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

        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(dtype)
        try:
            return module.build(spec)
        finally:
            keras.config.set_dtype_policy(previous)


def backend_of(model: Any) -> str:
    """'torch' or 'keras' for a model of either backend (imports nothing new)."""
    if "torch" in sys.modules:
        import torch

        if isinstance(model, torch.nn.Module):
            return "torch"
    if "keras" in sys.modules:
        import keras

        if isinstance(model, keras.Model | keras.layers.Layer):
            return "keras"
    raise TypeError(f"expected a torch.nn.Module or a keras.Model, got {type(model).__name__}")


def spec_of(model: Any) -> Spec:
    """The spec a model was built from (nnzoo builds carry it as `.spec`)."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, Spec):
        raise TypeError(f"{type(model).__name__} was not built by nnzoo: it carries no spec")
    return spec
