"""The checks behind nnzoo's promise: equal counts, equal shapes, and equal outputs.

Nothing here imports a framework at module level; each check imports what it runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnzoo import backends, guard
from nnzoo.errors import NnzooError, SpecError
from nnzoo.layout import from_keras, to_keras
from nnzoo.links import keras_name, torch_path
from nnzoo.offload import Shelf
from nnzoo.registry import resolve
from nnzoo.runtime import (
    ParamCount,
    check_device,
    count_params,
    ieee_float32,
    keras_device,
    output_shape,
    run,
    to_numpy,
    torch_input,
)
from nnzoo.specs.base import Spec


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
            "agreement": [{"direction": a.direction, "dtype": a.dtype, "max_abs": a.max_abs,
                           "max_rel": a.max_rel, "scale": a.scale, "noise": a.noise,
                           "bound": a.bound, "ok": a.ok}
                          for a in self.agreement],
            "layers": [{"name": r.name, "shape": list(r.shape), "max_abs": r.max_abs,
                        "scale": r.scale, "ok": r.ok, "note": r.note} for r in self.layers],
            "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        lines = [f"{self.name} [{self.spec.family}] on {self.device}: {'OK' if self.ok else 'FAIL'}"]
        for b, c in self.counts.items():
            lines.append(f"  {b:<6} params {c}  output {self.shapes.get(b)}")
        for a in self.agreement:
            lines.append(f"  {a.direction:<13} {a.dtype:<8} max|diff| {a.max_abs:.2e}  rel "
                         f"{a.max_rel:.2e}  bound {a.bound:.2e}  {'ok' if a.ok else 'OUT OF BOUND'}")
        lines += [f"  ! {p}" for p in self.problems]
        if self.layers:
            lines.append(f"  {'layer':<32} {'shape':<22} {'max|diff|':>10} {'scale':>10}")
            for r in self.layers:
                flag = "" if r.ok else ("  <- first divergence" if r is self.first_divergence
                                        else "  x")
                lines.append(f"  {r.name:<32} {str(r.shape):<22} {r.max_abs:>10.2e} "
                             f"{r.scale:>10.2e}{flag}{'  ' + r.note if r.note else ''}")
        return "\n".join(lines)


def structural_problems(counts: dict[str, ParamCount], shapes: dict[str, tuple[int, ...]],
                        expected: tuple[int, ...]) -> list[str]:
    """The counts-and-shapes verdict: both counts equal, every output shape the spec's own."""
    problems = []
    if len(counts) == 2 and counts["torch"] != counts["keras"]:
        problems.append(f"counts differ: torch {counts['torch']} vs keras {counts['keras']}")
    problems += [f"{backend} output shape {shape} != expected {expected}"
                 for backend, shape in shapes.items() if tuple(shape) != tuple(expected)]
    return problems


def check_parity(
    name_or_spec: str | Spec | dict[str, Any],
    *,
    device: str = "cpu",
    batch: int = 2,
    seed: int = 0,
    numeric: bool = False,
    layers: bool = False,
    dtypes: Sequence[str] = ("float64", "float32"),
    **overrides: Any,
) -> ParityReport:
    """Build both backends from one spec, run both on the same example input, compare.

    Compared: trainable and non-trainable counts (each equal between backends) and the output
    shape (Keras's mapped to canonical layout; both equal to the spec's own `output_shape`).
    With `numeric`, weights are transferred both ways and the outputs compared against the
    bound (see `ATOL`); with `layers` -- or when the outputs disagree -- each named block's
    output is compared too, and the report names the first layer where the builds diverge.
    `dtypes` are the numeric comparisons made: float64 is the verdict, float32 the report beside
    it (two more builds); a check of a property that rounding cannot hide asks for float64 only.
    """
    check_device(device)
    if not dtypes or any(d not in ("float64", "float32") for d in dtypes):
        raise SpecError("dtypes", tuple(dtypes), "a non-empty subset of (float64, float32)")
    spec = resolve(name_or_spec, **overrides)
    name = name_or_spec if isinstance(name_or_spec, str) else spec.family
    report = ParityReport(name=name, spec=spec, device=device,
                          expected_shape=spec.output_shape(batch))
    guard.check(spec, what=f"{'a numeric' if numeric else 'a'} parity check of {name}", batch=batch,
                dtype="float64" if numeric else "float32",
                copies=guard.PARITY_COPIES if numeric else guard.BUILD_OVERHEAD)
    start = time.perf_counter()
    x = spec.example_input(batch, seed)
    for backend in ("torch", "keras"):
        try:
            model = backends.build_native(spec, backend, seed=seed)
            report.counts[backend] = count_params(model)
            report.shapes[backend] = output_shape(model, x, device=device)
            del model
            guard.release(spec, copies=1)  # one large build alive at a time
        except NnzooError:
            raise
        except Exception as exc:  # a build or run failure is a finding, reported per backend
            report.problems.append(f"{backend}: {type(exc).__name__}: {exc}")
    report.problems += structural_problems(report.counts, report.shapes, report.expected_shape)
    if numeric and not report.problems:
        try:
            verdict = "float64" if "float64" in dtypes else dtypes[0]  # layers reported there
            for dtype in sorted(dtypes, key=lambda d: d != verdict):
                first = dtype == verdict
                found, rows = numeric_parity(spec, device=device, batch=batch, seed=seed,
                                             layers=layers and first, dtype=dtype)
                if first:
                    report.layers = rows
                    if not all(a.ok for a in found) and not layers:
                        _, report.layers = numeric_parity(spec, device=device, batch=batch,
                                                          seed=seed, layers=True, dtype=dtype)
                report.agreement += found
        except NnzooError as exc:
            report.problems.append(f"weight transfer: {exc}")
        for a in report.agreement:
            if not a.ok:
                report.problems.append(
                    f"{a.direction} ({a.dtype}): max|diff| {a.max_abs:.3e} exceeds {a.bound:.3e}")
    report.seconds = time.perf_counter() - start
    return report


# ---- numeric parity: outputs after weight transfer, and where two builds part ------------------
#: The bound: max |y_keras - y_torch| <= ATOL * max(1, max |y_torch|), i.e. 1e-5 in absolute terms
#: for outputs of unit scale and 1e-5 relative to the largest output otherwise. It is the verdict
#: for the float64 comparison, where rounding is out of the picture and a real mismatch (an
#: epsilon, a padding, a layout) shows at 1e-4 or far above.
ATOL = 1e-5
#: The float32 comparison, beside the verdict: float32 rounding differs between the frameworks'
#: kernels and grows with depth (ResNet-152 reaches 1.5e-4 relative), so no fixed bound fits every
#: model. It must stay within NOISE_FACTOR times the network's own float32 rounding -- how far the
#: PyTorch build's float32 output lies from the same weights run in float64 -- or within ATOL.
NOISE_FACTOR = 10.0


def bound(scale: float, atol: float = ATOL) -> float:
    """The largest max|diff| that passes for outputs whose largest magnitude is `scale`."""
    return atol * max(1.0, scale)


def within_bound(diff: float, scale: float, atol: float = ATOL) -> bool:
    return diff <= bound(scale, atol)


@dataclass
class Agreement:
    """Output agreement of one transfer direction."""

    direction: str
    max_abs: float
    max_rel: float
    scale: float
    dtype: str = "float64"
    noise: float = 0.0  # float32 only: max |y_float32 - y_float64| of the PyTorch build
    #: every weight arrived bit for bit: the destination's canonical state dict equals the source's
    weights_exact: bool = True

    @property
    def bound(self) -> float:
        """The largest max|diff| that passes."""
        fixed = bound(self.scale)
        return fixed if self.dtype == "float64" else max(fixed, NOISE_FACTOR * self.noise)

    @property
    def ok(self) -> bool:
        return self.max_abs <= self.bound


def compare(a: np.ndarray, b: np.ndarray, direction: str, dtype: str = "float64",
            noise: float = 0.0) -> Agreement:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = float(np.max(np.abs(a64 - b64))) if a.size else 0.0
    scale = float(np.max(np.abs(a64))) if a.size else 0.0
    return Agreement(direction, diff, diff / scale if scale else diff, scale, dtype, noise)


def rounding_noise(torch_model: Any, x: np.ndarray, y: np.ndarray, *, device: str = "cpu") -> float:
    """How far a float32 PyTorch model's output `y` lies from the same weights in float64."""
    import copy

    twin = copy.deepcopy(torch_model).double()
    y64 = run(twin, x.astype(np.float64) if x.dtype.kind == "f" else x, device=device)
    return float(np.max(np.abs(y64 - y.astype(np.float64))))


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


def layer_report(torch_model: Any, keras_model: Any, x: np.ndarray, *,
                 device: str = "cpu") -> list[LayerDiff]:
    """Each named block's output in both builds, in PyTorch's execution order.

    Run after a weight transfer: the first row that is not ok is where the builds diverge.
    PyTorch's runs where its weights are; Keras's on `device`.
    """
    import keras
    import torch

    spec = backends.spec_of(torch_model)
    keras_names = {torch_path(layer.name) for layer in keras_model.layers}
    seen: dict[str, np.ndarray] = {}
    hooks = []
    for name, module in torch_model.named_modules():
        if name in keras_names:
            def hook(_m: Any, _i: Any, out: Any, name: str = name) -> None:
                # a copy: a later in-place op would otherwise change what was seen
                seen.setdefault(name, _first(out).detach().cpu().numpy().copy())
            hooks.append(module.register_forward_hook(hook))
    try:
        torch_model.eval()
        with torch.no_grad(), ieee_float32(device):
            torch_model(torch_input(torch_model, x))
    finally:
        for h in hooks:
            h.remove()
    names = list(seen)
    nhwc = {n for n, m in torch_model.named_modules() if getattr(m, "nnzoo_channels_last", False)}
    outputs = [keras_model.get_layer(keras_name(n)).output for n in names]
    probe = keras.Model(keras_model.input, outputs)
    with keras_device(device), ieee_float32(device):
        values = probe(to_keras(x, spec.input_kind), training=False)
    values = values if isinstance(values, list | tuple) else [values]
    rows = []
    for name, kv in zip(names, values):
        tv, kv = seen[name], to_numpy(kv)
        if kv.ndim == 4 and tv.ndim == 4 and spec.input_kind == "image" and name not in nhwc:
            kv = from_keras(kv, "image")
        if kv.shape != tv.shape:
            rows.append(LayerDiff(name, tv.shape, float("nan"), 0.0,
                                  f"shapes differ: torch {tv.shape}, keras {kv.shape}"))
            continue
        a = compare(tv, kv, name)
        rows.append(LayerDiff(name, tv.shape, a.max_abs, a.scale))
    return rows


def exercise_state(model: Any, seed: int, x: np.ndarray | None = None, *,
                   twin: Any = None) -> None:
    """Give batch-norm statistics realistic, non-trivial values (in place, either backend).

    Fresh builds hold mean 0 and variance 1, which hide wrong epsilons and swapped statistics;
    purely random statistics are no better, since they swamp the signal of a deep network and
    make its output nearly independent of the input. So the statistics are first measured on
    `x` (one training-mode pass of a PyTorch twin, cumulative averaging) and then perturbed:
    variance x U(0.5, 2), mean + N(0, 0.2) standard deviations. `twin` is a PyTorch build of the
    same spec to measure with (its weights are overwritten); without one, one is built.
    """
    import torch

    from nnzoo.conversion import load_state_dict, state_dict, state_items, state_keys

    spec = backends.spec_of(model)
    if not any(k.endswith("running_var") for k in state_keys(model)):
        return  # no statistics: and no copy of the weights made to find that out
    weights = dict(state_items(model))  # a PyTorch model's as views, a Keras model's converted
    if twin is None:
        twin = backends.build_native(spec, "torch", dtype=str(next(iter(weights.values())).dtype))
    if twin is not model:
        load_state_dict(twin, weights)
    norms = [m for m in twin.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly its statistics
    x = spec.example_input(4, seed) if x is None else x
    if x.dtype.kind == "f":
        x = x.astype(next(twin.parameters()).dtype.__str__().replace("torch.", ""))
    twin.train()
    try:
        with torch.no_grad():
            twin(torch_input(twin, x))
    finally:
        twin.eval()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    rng = np.random.default_rng(seed)
    weights = state_dict(twin)
    for key, value in weights.items():
        if key.endswith("running_var"):
            weights[key] = (value * rng.uniform(0.5, 2.0, value.shape)).astype(value.dtype)
        elif key.endswith("running_mean"):
            std = np.sqrt(weights[key.replace("running_mean", "running_var")])
            weights[key] = (value + rng.normal(0.0, 0.2, value.shape) * std).astype(value.dtype)
    load_state_dict(model, weights)


def numeric_parity(spec: Spec, *, device: str = "cpu", batch: int = 2, seed: int = 0,
                   layers: bool = False, dtype: str = "float64",
                   ) -> tuple[list[Agreement], list[LayerDiff]]:
    """`_numeric_parity`, with float64 really float64 on every Keras backend (JAX's x64 mode is
    on for the check's scope only)."""
    scope = backends.float64_scope() if dtype == "float64" else contextlib.nullcontext()
    with scope:
        return _numeric_parity(spec, device=device, batch=batch, seed=seed, layers=layers,
                               dtype=dtype)


def _same_weights(a: Any, b: Any) -> bool:
    """Both models' canonical state dicts are equal bit for bit (a transfer's round trip).
    Compared one key at a time against views of the PyTorch side, holding no whole copy."""
    from nnzoo.conversion import state_items

    if backends.backend_of(a) != "torch":
        a, b = b, a
    reference = dict(state_items(a))
    seen = set()
    for key, value in state_items(b):
        if key not in reference or key in seen or not np.array_equal(reference[key], value):
            return False
        seen.add(key)
    return len(seen) == len(reference)


def _numeric_parity(spec: Spec, *, device: str, batch: int, seed: int, layers: bool, dtype: str,
                    ) -> tuple[list[Agreement], list[LayerDiff]]:
    # One build per framework serves both directions: the Keras build's own initial weights are
    # kept aside (canonical form) before PyTorch's overwrite them, then come back for the
    # Keras -> PyTorch direction. Builds dominate the cost of the large models. The set-aside copy
    # goes on a shelf (on disk for the largest), and transfers and comparisons read PyTorch's
    # weights as views: the check holds the two builds and little more (ViT-L/16 in float64: 2.4
    # GB each; 13.3 GB at its peak before, measured on TensorFlow).
    from nnzoo.conversion import load_state_dict, state_items, transfer_weights

    x = spec.example_input(batch, seed)
    if x.dtype.kind == "f":
        x = x.astype(dtype)
    with Shelf(guard.weight_bytes(spec, dtype)) as shelf:
        torch_model = backends.build_native(spec, "torch", seed=seed, dtype=dtype)
        keras_model = backends.build_native(spec, "keras", seed=seed + 1, dtype=dtype)
        keras_own = shelf.put(state_items(keras_model))
        exercise_state(torch_model, seed, twin=torch_model)
        transfer_weights(torch_model, keras_model)
        exact_there = _same_weights(torch_model, keras_model)
        y_torch = run(torch_model, x, device=device)
        noise = (rounding_noise(torch_model, x, y_torch, device=device) if dtype == "float32"
                 else 0.0)
        results = [compare(y_torch, run(keras_model, x, device=device, compiled=True),
                           "torch->keras", dtype, noise)]
        results[0].weights_exact = exact_there
        rows = layer_report(torch_model, keras_model, x, device=device) if layers else []
        load_state_dict(keras_model, keras_own)
        del keras_own
        exercise_state(keras_model, seed + 1, twin=torch_model)
        transfer_weights(keras_model, torch_model)
        exact_back = _same_weights(keras_model, torch_model)
        y_keras = run(keras_model, x, device=device, compiled=True)
        y_back = run(torch_model, x, device=device)
        noise = rounding_noise(torch_model, x, y_back, device=device) if dtype == "float32" else 0.0
        results.append(compare(y_keras, y_back, "keras->torch", dtype, noise))
        results[1].weights_exact = exact_back
        del torch_model, keras_model
    guard.release(spec, dtype=dtype)  # the pair, before the next check
    return results, rows
