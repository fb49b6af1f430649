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
    agreement: list[Agreement] = field(default_factory=list)
    layers: list[LayerDiff] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def first_divergence(self) -> LayerDiff | None:
        """The first named block (in execution order) whose outputs disagree, if any."""
        return next((row for row in self.layers if not row.ok), None)

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
            "agreement": [{"direction": a.direction, "max_abs": a.max_abs, "max_rel": a.max_rel,
                           "scale": a.scale, "ok": a.ok} for a in self.agreement],
            "layers": [{"name": r.name, "shape": list(r.shape), "max_abs": r.max_abs,
                        "scale": r.scale, "ok": r.ok, "note": r.note} for r in self.layers],
            "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        lines = [f"{self.name} [{self.spec.family}] on {self.device}: {'OK' if self.ok else 'FAIL'}"]
        for b, c in self.counts.items():
            lines.append(f"  {b:<6} params {c}  output {self.shapes.get(b)}")
        for a in self.agreement:
            lines.append(f"  {a.direction:<13} max|diff| {a.max_abs:.2e}  rel {a.max_rel:.2e}"
                         f"  {'ok' if a.ok else 'OUT OF BOUND'}")
        lines += [f"  ! {p}" for p in self.problems]
        if self.layers:
            lines.append(f"  {'layer':<32} {'shape':<22} {'max|diff|':>10} {'scale':>10}")
            for r in self.layers:
                flag = "" if r.ok else ("  <- first divergence" if r is self.first_divergence
                                        else "  x")
                lines.append(f"  {r.name:<32} {str(r.shape):<22} {r.max_abs:>10.2e} "
                             f"{r.scale:>10.2e}{flag}{'  ' + r.note if r.note else ''}")
        return "\n".join(lines)


def check_parity(
    name_or_spec: str | Spec | dict[str, Any],
    *,
    device: str = "cpu",
    batch: int = 2,
    seed: int = 0,
    numeric: bool = False,
    layers: bool = False,
    **overrides: Any,
) -> ParityReport:
    """Build both backends from one spec, run both on the same example input, compare.

    Compared: trainable and non-trainable counts (each equal between backends) and the output
    shape (Keras's mapped to canonical layout; both equal to the spec's own `output_shape`).
    With `numeric`, weights are transferred both ways and the outputs compared against the
    bound (see `ATOL`); with `layers` -- or when the outputs disagree -- each named block's
    output is compared too, and the report names the first layer where the builds diverge.
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
    if numeric and not report.problems:
        try:
            report.agreement, report.layers = numeric_parity(
                spec, device=device, batch=batch, seed=seed, layers=layers)
            if not all(a.ok for a in report.agreement) and not layers:
                _, report.layers = numeric_parity(spec, device=device, batch=batch, seed=seed,
                                                  layers=True)
        except NnzooError as exc:
            report.problems.append(f"weight transfer: {exc}")
        for a in report.agreement:
            if not a.ok:
                report.problems.append(
                    f"{a.direction}: max|diff| {a.max_abs:.3e} exceeds {ATOL:g} x max(1, {a.scale:.3g})")
    report.seconds = time.perf_counter() - start
    return report


# ---- numeric parity: outputs after weight transfer, and where two builds part ------------------
#: The bound: max |y_keras - y_torch| <= ATOL * max(1, max |y_torch|), i.e. 1e-5 in absolute terms
#: for outputs of unit scale and 1e-5 relative to the largest output otherwise.
ATOL = 1e-5


def within_bound(diff: float, scale: float, atol: float = ATOL) -> bool:
    return diff <= atol * max(1.0, scale)


@dataclass
class Agreement:
    """Output agreement of one transfer direction."""

    direction: str
    max_abs: float
    max_rel: float
    scale: float

    @property
    def ok(self) -> bool:
        return within_bound(self.max_abs, self.scale)


def compare(a: np.ndarray, b: np.ndarray, direction: str) -> Agreement:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = float(np.max(np.abs(a64 - b64))) if a.size else 0.0
    scale = float(np.max(np.abs(a64))) if a.size else 0.0
    return Agreement(direction, diff, diff / scale if scale else diff, scale)


@dataclass
class LayerDiff:
    """One named block's output in both builds (canonical layout)."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    scale: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.note and within_bound(self.max_abs, self.scale)


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, tuple | list) else out


def layer_report(torch_model: Any, keras_model: Any, x: np.ndarray) -> list[LayerDiff]:
    """Each named block's output in both builds, in PyTorch's execution order.

    Run after a weight transfer: the first row that is not ok is where the builds diverge.
    """
    import keras
    import torch

    spec = backends.spec_of(torch_model)
    keras_names = {layer.name for layer in keras_model.layers}
    seen: dict[str, np.ndarray] = {}
    hooks = []
    for name, module in torch_model.named_modules():
        if name in keras_names:
            def hook(_m: Any, _i: Any, out: Any, name: str = name) -> None:
                seen.setdefault(name, _first(out).detach().cpu().numpy())
            hooks.append(module.register_forward_hook(hook))
    try:
        torch_model.eval()
        with torch.no_grad():
            torch_model(torch.from_numpy(x))
    finally:
        for h in hooks:
            h.remove()
    names = list(seen)
    outputs = [keras_model.get_layer(n).output for n in names]
    probe = keras.Model(keras_model.input, outputs)
    values = probe(to_keras(x, spec.input_kind), training=False)
    values = values if isinstance(values, list | tuple) else [values]
    rows = []
    for name, kv in zip(names, values):
        tv, kv = seen[name], np.asarray(kv)
        if kv.ndim == 4 and tv.ndim == 4 and spec.input_kind == "image":
            kv = from_keras(kv, "image")
        if kv.shape != tv.shape:
            rows.append(LayerDiff(name, tv.shape, float("nan"), 0.0,
                                  f"shapes differ: torch {tv.shape}, keras {kv.shape}"))
            continue
        a = compare(tv, kv, name)
        rows.append(LayerDiff(name, tv.shape, a.max_abs, a.scale))
    return rows


def exercise_state(model: Any, seed: int) -> None:
    """Give batch-norm statistics random, non-trivial values (in place).

    Fresh builds hold mean 0 and variance 1, which hide wrong epsilons and swapped statistics;
    a parity check on random statistics does not.
    """
    from nnzoo.convert import load_state_dict, state_dict

    rng = np.random.default_rng(seed)
    weights = state_dict(model)
    for key, value in weights.items():
        if key.endswith("running_mean"):
            weights[key] = rng.normal(0.0, 0.5, value.shape).astype(value.dtype)
        elif key.endswith("running_var"):
            weights[key] = rng.uniform(0.5, 2.0, value.shape).astype(value.dtype)
    load_state_dict(model, weights)


def numeric_parity(spec: Spec, *, device: str = "cpu", batch: int = 2, seed: int = 0,
                   layers: bool = False) -> tuple[list[Agreement], list[LayerDiff]]:
    """Transfer weights both ways and compare outputs in inference mode on the same input."""
    from nnzoo.convert import transfer_weights

    x = spec.example_input(batch, seed)
    torch_model = backends.build_native(spec, "torch", seed=seed)
    keras_model = backends.build_native(spec, "keras", seed=seed + 1)
    exercise_state(torch_model, seed)
    transfer_weights(torch_model, keras_model)
    y_torch = run(torch_model, x, device=device)
    results = [compare(y_torch, run(keras_model, x, device=device), "torch->keras")]
    rows = layer_report(torch_model, keras_model, x) if layers else []
    del torch_model
    keras_back = backends.build_native(spec, "keras", seed=seed + 2)
    torch_back = backends.build_native(spec, "torch", seed=seed + 3)
    exercise_state(keras_back, seed + 1)
    transfer_weights(keras_back, torch_back)
    y_keras = run(keras_back, x, device=device)
    results.append(compare(y_keras, run(torch_back, x, device=device), "keras->torch"))
    return results, rows
