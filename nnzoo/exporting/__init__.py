"""Export an nnzoo model -- ONNX, torch.export, SavedModel, LiteRT, safetensors, .keras -- and
check the artifact against the model it came from.

    >>> result = nnzoo.export(model, "onnx", "model.onnx")   # written, reloaded, compared
    >>> print(result)                                         # the measured differences

Every artifact is loaded back in its own runtime and run on the batch sizes 1 and 7 (and, where
the model leaves its spatial size or sequence length free, on a second size); its outputs must
agree with the native model's under the float32 parity criterion (`nnzoo.parity.Agreement`,
dtype float32: the bound grows with the network's own float32 rounding noise). What a backend
cannot write is refused before any work, naming the formats it can (`formats.SUPPORT`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnzoo import backends, conversion, guard
from nnzoo.errors import ExportCheckError
from nnzoo.exporting import formats
from nnzoo.exporting.formats import FORMATS, SUPPORT, writable, writer_of
from nnzoo.parity import Agreement, compare, rounding_noise
from nnzoo.runtime import run
from nnzoo.specs.base import Spec

__all__ = ["FORMATS", "SUPPORT", "ExportResult", "export", "writable", "writer_of"]

#: canonical input axis names, per input kind (for saying which axes an artifact leaves free)
AXES = {"image": ("batch", "channels", "height", "width"), "sequence": ("batch", "time", "features"),
        "tokens": ("batch", "time"), "vector": ("batch", "features")}
#: Keras model -> its float64 twin (for the rounding noise); dies with the model
_TWINS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
#: the batch sizes every artifact is run at: the batch axis must stay free
BATCHES = (1, 7)


@dataclass
class ExportResult:
    """What `export` wrote and what the check measured (`str()` for a readable summary)."""

    name: str
    format: str
    writer: str  # "torch" or "keras/<Keras backend>"
    path: Path
    size: int  # bytes on disk (a SavedModel: the whole directory)
    free: tuple[str, ...] = ()  # input axes the artifact leaves free
    fixed: tuple[str, ...] = ()  # axes the model leaves free but the artifact fixes
    checks: list[tuple[tuple[int, ...], Agreement]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def checked(self) -> bool:
        return bool(self.checks)

    @property
    def ok(self) -> bool:
        """Every checked input agreed (True when unchecked: nothing was measured)."""
        return all(a.ok for _, a in self.checks)

    @property
    def max_abs(self) -> float:
        return max((a.max_abs for _, a in self.checks), default=float("nan"))

    def __str__(self) -> str:
        verdict = ("OK" if self.ok else "FAIL") if self.checked else "not checked"
        lines = [f"{self.name} -> {self.path} ({self.format} from {self.writer}, "
                 f"{self.size / 1e6:.2f} MB, {self.seconds:.1f}s): {verdict}"]
        if self.checked:
            lines.append(f"  free input axes: {', '.join(self.free) or 'none'}"
                         + (f"; fixed by {self.format}: {', '.join(self.fixed)}" if self.fixed else ""))
            for shape, a in self.checks:
                lines.append(f"  input {str(shape):<18} max|diff| {a.max_abs:.2e}  bound {a.bound:.2e}"
                             f"  {'ok' if a.ok else 'OUT OF BOUND'}")
        return "\n".join(lines)


def export(model: Any, format: str, path: str | os.PathLike[str], *, check: bool = True,
           name: str | None = None) -> ExportResult:
    """Write `model` (an nnzoo build of either backend) as `format` at `path`, then -- with
    `check` -- load it in its own runtime and compare its outputs with the model's.

    Formats: onnx, pt2 (torch.export), saved-model, litert (.tflite), safetensors (canonical
    weights), keras (.keras); `nnzoo.exporting.writable(writer)` says which a backend writes.
    Raises `ExportFormatError` (a format this backend or family cannot write, or a wrong
    suffix) or `BackendNotInstalledError` (a missing exporter; the `export` extra) before any
    work, and `ExportCheckError` if the artifact's outputs disagree (it stays on disk).
    """
    backend = backends.backend_of(model)
    spec = backends.spec_of(model)
    writer = writer_of(backend, backends.keras_backend() if backend == "keras" else None)
    label = name or spec.family
    p = formats.check_format(format, writer, spec, path, f"{label} ({spec.family}) from {writer}")
    guard.check(spec, what=f"an export of {label} as {format}", copies=guard.EXPORT_COPIES,
                batch=max(BATCHES) if check else 0)
    start = time.perf_counter()
    with _inference_mode(model, backend):
        from nnzoo.exporting import writers

        writers.write(model, backend, format, p)
        result = ExportResult(label, format, writer, p, _size(p))
        if check:
            verify(model, result, spec, backend)
    result.seconds = time.perf_counter() - start
    if not result.ok:
        raise ExportCheckError(f"the exported artifact disagrees with the model:\n{result}")
    return result


@contextlib.contextmanager
def _inference_mode(model: Any, backend: str) -> Any:
    """PyTorch builds are exported in eval mode; their training flag is restored afterwards."""
    training = bool(getattr(model, "training", False)) if backend == "torch" else False
    if backend == "torch":
        model.eval()
    try:
        yield
    finally:
        if training:
            model.train()


def _size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


def resized(spec: Spec) -> Spec:
    """The spec with its free axes at a second size: images larger and non-square (keeping U-Net's
    multiple of 2**depth), sequences longer (within a learned position table)."""
    if spec.input_kind == "image":
        step = max(16, int(getattr(spec, "multiple", 1)))
        h, w = spec.image_size  # type: ignore[attr-defined]
        return spec.replace(image_size=(h + step, w + 2 * step))
    longer = spec.seq_len + 5  # type: ignore[attr-defined]
    return spec.replace(seq_len=min(longer, getattr(spec, "max_len", longer)))


def check_inputs(spec: Spec, free: tuple[int, ...]) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """The inputs an artifact is checked on, and the model's free axes that the artifact fixes."""
    xs = [spec.example_input(b, seed=1) for b in BATCHES]
    wanted = tuple(a + 1 for a in sorted(spec.flexible_axes(channels_last=False)))
    fixed = tuple(a for a in wanted if a not in free)
    if wanted and not fixed:
        xs.append(resized(spec).example_input(2, seed=2))
    return xs, fixed


def verify(model: Any, result: ExportResult, spec: Spec, backend: str) -> None:
    """Load the artifact in its runtime, run every check input, compare with the native model."""
    from nnzoo.exporting import runtimes

    loaded = runtimes.load(result.format, result.path, spec, backend)
    if 0 not in loaded.free:
        raise ExportCheckError(f"{result.path}: the batch axis was fixed by the exporter")
    names = AXES[spec.input_kind]
    xs, fixed = check_inputs(spec, loaded.free)
    result.free = tuple(names[a] for a in loaded.free)
    result.fixed = tuple(names[a] for a in fixed)
    for x in xs:
        y, noise = reference(model, backend, spec, x)
        got = loaded.call(x)
        if got.shape != y.shape:
            raise ExportCheckError(f"{result.path}: output shape {got.shape} for input "
                                   f"{x.shape}, the model's is {y.shape}")
        result.checks.append((x.shape, compare(y, got, f"{result.format} {x.shape}", "float32",
                                               noise)))


#: model -> (weights digest, {input digest: (native output, rounding noise)}): exporting one
#: model to several formats runs it, and its float64 twin, once per check input, not per format
_REFERENCES: weakref.WeakKeyDictionary[Any, tuple[str, dict[str, tuple[np.ndarray, float]]]] = (
    weakref.WeakKeyDictionary())


def _digest(arrays: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    for key, value in arrays:
        h.update(key.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def reference(model: Any, backend: str, spec: Spec, x: np.ndarray) -> tuple[np.ndarray, float]:
    """The native model's output at `x` and its float32 rounding noise there (cached while the
    weights are unchanged: the digest of the canonical state dict is part of the key)."""
    weights = _digest(sorted(conversion.state_dict(model).items()))
    seen, cache = _REFERENCES.get(model, ("", {}))
    if seen != weights:
        cache = {}
        _REFERENCES[model] = (weights, cache)
    key = _digest([(str(x.shape), x)])
    if key not in cache:
        y = run(model, x, compiled=True)
        cache[key] = (y, _noise_fn(model, backend, spec)(x, y))
    return cache[key]


def _noise_fn(model: Any, backend: str, spec: Spec) -> Any:
    """`(x, y) -> float32 rounding noise of the model at x`: how far its float32 output `y` lies
    from the same weights in float64 (the scale of the bound, as in the parity check)."""
    if backend == "torch":
        return lambda x, y: rounding_noise(model, x, y)
    with backends.float64_scope():
        twin = _TWINS.get(model)  # a Keras build is slow: one float64 twin per model, reloaded
        if twin is None:
            twin = _TWINS[model] = conversion.build_loaded(spec, "keras",
                                                           conversion.state_dict(model),
                                                           dtype="float64")
        else:
            conversion.load_state_dict(twin, conversion.state_dict(model))

    def noise(x: np.ndarray, y: np.ndarray) -> float:
        with backends.float64_scope():
            y64 = run(twin, x.astype(np.float64) if x.dtype.kind == "f" else x, compiled=True)
        return float(np.max(np.abs(y64 - y.astype(np.float64))))

    return noise
