"""The checks behind nnzoo's promise: equal counts, equal shapes, and equal outputs.

Nothing here imports a framework at module level; each check imports what it runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnzoo import backends
from nnzoo.errors import DeviceError, NnzooError
from nnzoo.layout import from_keras, to_keras
from nnzoo.registry import resolve
from nnzoo.specs.base import Spec


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts by DESIGN.md's definition (equal between backends for every model).

    trainable: torch parameters that require grad <-> Keras `trainable_weights`.
    non_trainable: frozen parameters and persistent buffers (batch-norm running statistics; not
    the `num_batches_tracked` counter) <-> Keras `non_trainable_weights`.
    """

    trainable: int
    non_trainable: int

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def __str__(self) -> str:
        return f"{self.total:,} ({self.trainable:,} trainable, {self.non_trainable:,} state)"


def count_params(model: Any) -> ParamCount:
    """Count a PyTorch or a Keras model's parameters the same way."""
    if backends.backend_of(model) == "torch":
        params = dict(model.named_parameters())
        trainable = sum(p.numel() for p in params.values() if p.requires_grad)
        frozen = sum(p.numel() for p in params.values() if not p.requires_grad)
        state = sum(
            t.numel()
            for k, t in model.state_dict(keep_vars=True).items()
            if k not in params and not k.endswith("num_batches_tracked")
        )
        return ParamCount(trainable, frozen + state)
    size = lambda ws: sum(int(np.prod(w.shape)) for w in ws)  # noqa: E731
    return ParamCount(size(model.trainable_weights), size(model.non_trainable_weights))


# ---- running a model in inference mode, in canonical layout -----------------------------------
def _check_device(device: str) -> None:
    if device not in ("cpu", "gpu"):
        raise DeviceError(f"unknown device {device!r}; choose 'cpu' or 'gpu'")


def gpu_status() -> tuple[bool, str]:
    """(usable, reason): both PyTorch (CUDA) and TensorFlow must see a GPU."""
    import torch

    if not torch.cuda.is_available():
        return False, "PyTorch sees no CUDA device"
    backends.require("keras")
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return False, "TensorFlow sees no GPU"
    return True, ""


def run(model: Any, x: np.ndarray, *, device: str = "cpu") -> np.ndarray:
    """Run an nnzoo model of either backend in inference mode on canonical input `x`."""
    _check_device(device)
    spec = backends.spec_of(model)
    if backends.backend_of(model) == "torch":
        import torch

        dev = torch.device("cuda" if device == "gpu" else "cpu")
        model.eval().to(dev)
        with torch.no_grad():
            y = model(torch.from_numpy(x).to(dev))
        return y.detach().cpu().numpy()
    import tensorflow as tf

    with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
        y = model(to_keras(x, spec.input_kind), training=False)
    return from_keras(np.asarray(y), spec.output_kind)


# ---- the report ------------------------------------------------------------------------------
@dataclass
class ParityReport:
    """What `check_parity` found for one model; `.ok` is the verdict, `str()` a readable summary."""

    name: str
    spec: Spec
    device: str = "cpu"
    counts: dict[str, ParamCount] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    expected_shape: tuple[int, ...] = ()
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and len(self.counts) == 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.spec.family,
            "device": self.device,
            "ok": self.ok,
            "counts": {b: {"trainable": c.trainable, "non_trainable": c.non_trainable}
                       for b, c in self.counts.items()},
            "shapes": {b: list(s) for b, s in self.shapes.items()},
            "expected_shape": list(self.expected_shape),
            "problems": list(self.problems),
            "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        lines = [f"{self.name} [{self.spec.family}] on {self.device}: {'OK' if self.ok else 'FAIL'}"]
        for b, c in self.counts.items():
            lines.append(f"  {b:<6} params {c}  output {self.shapes.get(b)}")
        lines += [f"  ! {p}" for p in self.problems]
        return "\n".join(lines)


def check_parity(
    name_or_spec: str | Spec | dict[str, Any],
    *,
    device: str = "cpu",
    batch: int = 2,
    seed: int = 0,
    **overrides: Any,
) -> ParityReport:
    """Build both backends from one spec, run both on the same example input, compare.

    Compared: trainable and non-trainable counts (each equal between backends) and the output
    shape (Keras's mapped to canonical layout; both equal to the spec's own `output_shape`).
    """
    _check_device(device)
    spec = resolve(name_or_spec, **overrides)
    name = name_or_spec if isinstance(name_or_spec, str) else spec.family
    report = ParityReport(name=name, spec=spec, device=device,
                          expected_shape=spec.output_shape(batch))
    start = time.perf_counter()
    x = spec.example_input(batch, seed)
    for backend in ("torch", "keras"):
        try:
            model = backends.build_native(spec, backend, seed=seed)
            report.counts[backend] = count_params(model)
            report.shapes[backend] = tuple(run(model, x, device=device).shape)
        except NnzooError:
            raise
        except Exception as exc:  # a build or run failure is a finding, reported per backend
            report.problems.append(f"{backend}: {type(exc).__name__}: {exc}")
    if len(report.counts) == 2 and report.counts["torch"] != report.counts["keras"]:
        report.problems.append(
            f"counts differ: torch {report.counts['torch']} vs keras {report.counts['keras']}"
        )
    for backend, shape in report.shapes.items():
        if shape != report.expected_shape:
            report.problems.append(
                f"{backend} output shape {shape} != expected {report.expected_shape}"
            )
    report.seconds = time.perf_counter() - start
    return report
