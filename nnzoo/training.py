"""Training parity: the same gradients, the same optimizer steps and the same loss curve in both
frameworks.

`gradient_parity` computes one loss's gradients in both builds after a weight transfer (both
ways) and compares them key by key through the converter's links. `train_parity` trains both
builds from the same initial weights on the same batches and records, after every update, both
losses and the largest weight difference. Both compare against the parity bound of
`nnzoo.parity` (float64, the verdict: 1e-5 x max(1, scale)). Stochastic layers are switched off
(`deterministic`): two frameworks' random streams cannot agree, only their distributions can.
Frameworks are imported by the functions that need them.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnzoo import backends, guard
from nnzoo.errors import InputError, NnzooError, SpecError
from nnzoo.offload import Shelf
from nnzoo.parity import ATOL, Agreement, bound
from nnzoo.registry import resolve
from nnzoo.specs.base import Spec
from nnzoo.specs.training import (
    LossSpec,
    OptimizerSpec,
    check_batch,
    deterministic,
    loss_spec,
    optimizer_spec,
    stochastic_fields,
    synthetic_batch,
)

#: float32 training, reported beside the float64 verdict: each framework rounds its own way and
#: the two trajectories part slowly; this is the tolerance they are held to.
ATOL32 = 1e-3
DTYPES = ("float64", "float32")
#: What a pair of trainers held, in copies of the weights: each framework's weights, gradients
#: and up to two optimizer slots (Adam's moments).
TRAINER_COPIES = 8.0


def _scope(dtype: str) -> Any:
    return backends.float64_scope() if dtype == "float64" else contextlib.nullcontext()


def _trainers(spec: Spec, opt: OptimizerSpec, loss: LossSpec, *, dtype: str, seed: int,
              steps: int) -> tuple[Any, Any]:
    """A PyTorch and a Keras trainer on fresh builds of `spec` (weights not yet shared)."""
    from nnzoo.keras_impl.training import Trainer as KerasTrainer
    from nnzoo.torch_impl.training import Trainer as TorchTrainer

    torch_model = backends.build_native(spec, "torch", seed=seed, dtype=dtype)
    keras_model = backends.build_native(spec, "keras", seed=seed + 1, dtype=dtype)
    return (TorchTrainer(torch_model, opt, loss, steps=steps),
            KerasTrainer(keras_model, opt, loss, steps=steps))


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise SpecError("dtype", dtype, f"one of {', '.join(DTYPES)}")


# ---- gradients ----------------------------------------------------------------------------------
@dataclass
class GradientReport:
    """Gradient agreement after a weight transfer, both ways; `.ok` is the verdict."""

    name: str
    spec: Spec
    dtype: str
    loss: LossSpec
    agreement: list[Agreement] = field(default_factory=list)
    losses: dict[str, tuple[float, float]] = field(default_factory=dict)
    worst: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(a.ok for a in self.agreement)

    def __str__(self) -> str:
        if self.dtype == "float64":
            verdict = "OK" if self.ok else "FAIL"
        else:  # reported beside the float64 verdict, not a verdict of its own
            verdict = (f"{'within' if self.ok else 'beyond'} 10x PyTorch's own float32 rounding "
                       "(reported; the verdict is float64's)")
        lines = [f"{self.name} gradients of {self.loss.kind} ({self.dtype}): {verdict}"]
        for a in self.agreement:
            t, k = self.losses[a.direction]
            lines.append(f"  {a.direction:<13} loss {t:.10g} vs {k:.10g}  max|dgrad| {a.max_abs:.2e}"
                         f"  rel {a.max_rel:.2e}  bound {a.bound:.2e}  worst {self.worst[a.direction]}")
        return "\n".join(lines + [f"  ! {p}" for p in self.problems])


def keras_gradient_items(model: Any, grads: list[Any]) -> Iterator[tuple[str, np.ndarray]]:
    """Keras gradients (native tensors, in `model.trainable_variables` order) as (PyTorch key,
    array in PyTorch's layout) pairs, through the same links and transforms as the weights. It
    empties `grads` and converts one link at a time, so each native gradient is dropped once
    converted: the largest models' gradients are gigabytes."""
    from nnzoo.links import keras_links
    from nnzoo.runtime import to_numpy

    by_var = {id(v): g for v, g in zip(model.trainable_variables, grads)}
    grads.clear()
    for link in keras_links(model):
        if all(id(v) in by_var for v in link.variables):
            yield link.key, np.asarray(link.to_torch([to_numpy(by_var.pop(id(v)))
                                                      for v in link.variables]))


def _compare_gradients(report: GradientReport, direction: str, torch_trainer: Any, loss_k: float,
                       mapped: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> None:
    """PyTorch's gradients on (x, y) against Keras's, computed before and set aside (`mapped`)."""
    loss_t, grads_t = torch_trainer.gradients(x, y)
    if set(mapped) != set(grads_t):
        report.problems.append(f"{direction}: trainable keys differ: torch only "
                               f"{sorted(set(grads_t) - set(mapped))}, keras only "
                               f"{sorted(set(mapped) - set(grads_t))}")
        return
    diffs = {k: max_abs_diff(grads_t[k], mapped[k]) for k in grads_t}
    scale = largest(max_abs(g) for g in grads_t.values())
    noise = 0.0
    if report.dtype == "float32":  # the network's own float32 rounding, as in numeric parity
        from nnzoo.torch_impl.training import Trainer

        twin = copy.deepcopy(torch_trainer.model).double()
        _, exact = Trainer(twin, torch_trainer.opt, report.loss, steps=1).gradients(x, y)
        noise = largest(max_abs_diff(exact[k], grads_t[k]) for k in grads_t)
    diff = largest(diffs.values())
    report.agreement.append(Agreement(direction, diff, diff / scale if scale else diff, scale,
                                      report.dtype, noise))
    report.losses[direction] = (loss_t, loss_k)
    report.worst[direction] = max(diffs, key=lambda k: np.nan_to_num(diffs[k], nan=np.inf))
    if not abs(loss_t - loss_k) <= bound(abs(loss_t)):
        report.problems.append(f"{direction}: losses differ: {loss_t!r} vs {loss_k!r}")


#: Elements per piece when two arrays are compared: ViT-H/14's 52 MB gradients are differenced a
#: piece at a time in one reused buffer, not into whole fresh temporaries (fresh memory is what
#: is slow on a VM that hands freed pages back to its host: see nnzoo.offload).
PIECE = 1 << 20


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| in the wider dtype: 0 when empty, inf when the shapes differ, NaN when any
    element is NaN (so that no bound passes it)."""
    if a.shape != b.shape:
        return float("inf")
    a, b = a.reshape(-1), b.reshape(-1)
    scratch = np.empty(min(a.size, PIECE), np.result_type(a, b))
    pieces = [0.0]
    for start in range(0, a.size, PIECE):
        d = scratch[:min(PIECE, a.size - start)]
        np.subtract(a[start:start + PIECE], b[start:start + PIECE], out=d)
        pieces.append(float(np.max(np.abs(d, out=d))))
    return largest(pieces)


def max_abs(a: np.ndarray) -> float:
    """max |a| (0 when empty, NaN when any element is), without an |a| temporary."""
    return largest([float(a.max()), -float(a.min())]) if a.size else 0.0


def largest(values: Iterable[float]) -> float:
    """The largest value, 0 for none, NaN if any is NaN (Python's `max` can skip a NaN)."""
    return float(np.max(np.fromiter(values, float), initial=0.0))


#: Weights (bytes) up to which the gradient check keeps PyTorch's first build for its own half
#: rather than building it again (0.2-0.5 s a build for the zoo's small models, in each check on
#: each Keras backend); above, the copy is not worth holding beside Keras's weights and gradients.
KEEP_FIRST_BUILD = 2**28


def gradient_parity(name_or_spec: str | Spec | Mapping[str, Any], *, dtype: str = "float64",
                    batch: int = 2, seed: int = 0, loss: str | LossSpec | None = None,
                    **overrides: Any) -> GradientReport:
    """The gradients of the same loss on the same batch, PyTorch vs Keras, in both directions
    (PyTorch's initial weights into Keras, then Keras's into PyTorch), with stochastic layers off.

    Each direction's Keras gradients are computed and set aside (`nnzoo.offload`: on disk for
    the largest models), Keras's build is dropped, and PyTorch's are computed and compared.
    PyTorch's first build is kept for its half where its weights are small (`KEEP_FIRST_BUILD`);
    otherwise it is dropped before Keras computes and a second one is built from the same seed
    (the same weights: nnzoo's seeded builds are reproducible), so the check peaks at about two
    copies of the weights -- one build's weights and gradients -- plus the frameworks' working
    memory, and ViT-H/14 fits in float64. (Keras on TensorFlow
    returns a dropped build's memory only with `TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1`: oneDNN's own
    CPU allocator keeps it pooled, measured 5.5 GB after ViT-L/16's check; `make test` sets it.)
    """
    from nnzoo.conversion import load_state_dict, state_items
    from nnzoo.keras_impl.training import Trainer as KerasTrainer
    from nnzoo.torch_impl.training import Trainer as TorchTrainer

    _check_dtype(dtype)
    spec = deterministic(resolve(name_or_spec, **overrides))
    lossspec = loss_spec(loss, spec)
    x, y = synthetic_batch(spec, lossspec, batch, seed)
    check_batch(spec, lossspec, x, y)
    name = name_or_spec if isinstance(name_or_spec, str) else spec.family
    report = GradientReport(name, spec, dtype, lossspec)
    opt = optimizer_spec()
    nbytes = guard.weight_bytes(spec, dtype)
    with _scope(dtype), Shelf(nbytes) as shelf:
        torch_model = backends.build_native(spec, "torch", seed=seed, dtype=dtype)
        keras_t = KerasTrainer(backends.build_native(spec, "keras", seed=seed + 1, dtype=dtype),
                               opt, lossspec, steps=1)
        keras_own = shelf.put(state_items(keras_t.model))
        load_state_dict(keras_t.model, dict(state_items(torch_model)))  # views: no copy
        if nbytes > KEEP_FIRST_BUILD:
            torch_model = None
        from_keras = {}
        for direction in ("torch->keras", "keras->torch"):
            if direction == "keras->torch":
                load_state_dict(keras_t.model, keras_own)
            loss_k, grads = keras_t.gradients(x, y)
            from_keras[direction] = loss_k, shelf.put(keras_gradient_items(keras_t.model, grads))
        del keras_t, grads
        guard.release(spec, dtype=dtype, copies=2)  # Keras's cycles: collected before PyTorch
        if torch_model is None:
            torch_model = backends.build_native(spec, "torch", seed=seed, dtype=dtype)
        torch_t = TorchTrainer(torch_model, opt, lossspec, steps=1)
        del torch_model
        for direction, (loss_k, mapped) in from_keras.items():
            if direction == "keras->torch":
                load_state_dict(torch_t.model, keras_own)
            _compare_gradients(report, direction, torch_t, loss_k, mapped, x, y)
        del torch_t
        guard.release(spec, dtype=dtype, copies=2)
    return report


# ---- training -----------------------------------------------------------------------------------
@dataclass
class TrainStep:
    """Both builds after update `step` (1-based): the loss each computed before it, the rate it
    used, and the largest difference over every weight and batch-norm statistic after it."""

    step: int
    lr: float
    loss_torch: float
    loss_keras: float
    weight_diff: float
    weight_scale: float
    atol: float = ATOL

    @property
    def loss_diff(self) -> float:
        return abs(self.loss_torch - self.loss_keras)

    @property
    def ok(self) -> bool:
        return (self.loss_diff <= bound(abs(self.loss_torch), self.atol)
                and self.weight_diff <= bound(self.weight_scale, self.atol))


@dataclass
class TrainResult:
    """What `train_parity` found; `.ok` is the verdict, `str()` the table, `plot()` the figure."""

    name: str
    spec: Spec
    optimizer: OptimizerSpec
    loss: LossSpec
    dtype: str
    batch: int
    keras_backend: str
    zeroed: dict[str, float] = field(default_factory=dict)
    initial_diff: float = 0.0
    steps: list[TrainStep] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    models: tuple[Any, Any] | None = field(default=None, repr=False)  # with keep_models

    @property
    def ok(self) -> bool:
        return bool(self.steps) and not self.problems and all(s.ok for s in self.steps)

    @property
    def losses(self) -> tuple[list[float], list[float]]:
        """Per-step losses: (PyTorch's, Keras's)."""
        return [s.loss_torch for s in self.steps], [s.loss_keras for s in self.steps]

    @property
    def weight_diffs(self) -> list[float]:
        return [s.weight_diff for s in self.steps]

    def describe(self) -> str:
        o = self.optimizer
        extra = {"sgd": f"momentum {o.momentum}{', nesterov' if o.nesterov else ''}",
                 "adam": f"betas {o.betas}, eps {o.eps:g}",
                 "adamw": f"betas {o.betas}, eps {o.eps:g}"}[o.kind]
        extra += f", weight decay {o.weight_decay:g}" if o.weight_decay else ""
        extra += f", clip {o.clip_norm:g}" if o.clip_norm else ""
        extra += f", {o.schedule.kind} schedule" if o.schedule.kind != "constant" else ""
        return (f"{o.kind} (lr {o.lr:g}, {extra}), {self.loss.kind} ({self.loss.reduction}), "
                f"{self.dtype}, batch {self.batch}, Keras on {self.keras_backend}")

    def __str__(self) -> str:
        lines = [f"{self.name} [{self.spec.family}] trained {len(self.steps)} steps: "
                 f"{'OK' if self.ok else 'FAIL'}", f"  {self.describe()}"]
        if self.zeroed:
            lines.append("  stochastic layers off for the comparison: "
                         + ", ".join(f"{k}={v:g} -> 0" for k, v in self.zeroed.items()))
        lines.append(f"  {'step':>4} {'lr':>9} {'loss torch':>14} {'loss keras':>14} "
                     f"{'|dloss|':>9} {'max|dw|':>9} {'bound':>9}")
        for s in self.steps:
            lines.append(f"  {s.step:>4} {s.lr:>9.3g} {s.loss_torch:>14.8f} {s.loss_keras:>14.8f} "
                         f"{s.loss_diff:>9.1e} {s.weight_diff:>9.1e} "
                         f"{bound(s.weight_scale, s.atol):>9.1e}{'' if s.ok else '  x'}")
        return "\n".join(lines + [f"  ! {p}" for p in self.problems])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.spec.family, "ok": self.ok,
                "optimizer": self.optimizer.to_dict(), "loss": self.loss.to_dict(),
                "dtype": self.dtype, "batch": self.batch, "keras_backend": self.keras_backend,
                "zeroed": dict(self.zeroed), "problems": list(self.problems),
                "steps": [{"step": s.step, "lr": s.lr, "loss_torch": s.loss_torch,
                           "loss_keras": s.loss_keras, "weight_diff": s.weight_diff,
                           "weight_scale": s.weight_scale, "ok": s.ok} for s in self.steps],
                "seconds": round(self.seconds, 3)}

    def plot(self, path: str | Path) -> Path:
        """Both loss curves, and their difference and the weight difference on a log axis."""
        try:
            import matplotlib
        except ImportError:
            raise NnzooError("drawing the figure needs matplotlib: pip install matplotlib "
                             '(it comes with "nnzoo[dev]")') from None
        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt

        steps = [s.step for s in self.steps]
        torch_loss, keras_loss = self.losses
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 2]})
        top.plot(steps, torch_loss, "o-", label="PyTorch", color="#ee4c2c", markersize=4)
        top.plot(steps, keras_loss, "x--", label=f"Keras ({self.keras_backend})",
                 color="#2b5797", markersize=5)
        top.set_ylabel(f"{self.loss.kind} loss")
        top.set_title(f"{self.name}: {self.optimizer.kind}, {self.dtype}, "
                      f"{'agree' if self.ok else 'DISAGREE'}", fontsize=11)
        top.legend()
        floor = 1e-18  # an exact zero, drawn at the bottom of the log axis
        bottom.semilogy(steps, np.maximum([s.loss_diff for s in self.steps], floor), "o-",
                        label="|loss difference|", color="#555555", markersize=3)
        bottom.semilogy(steps, np.maximum(self.weight_diffs, floor), "s-",
                        label="max |weight difference|", color="#2a9d8f", markersize=3)
        bottom.semilogy(steps, [bound(s.weight_scale, s.atol) for s in self.steps], ":",
                        color="#c1121f", label="parity bound (weights)")
        bottom.set_xlabel("step")
        bottom.set_ylabel("difference")
        bottom.legend(fontsize=8)
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, dpi=100)
        plt.close(fig)
        return out


def _batches(x: np.ndarray, y: np.ndarray, batch: int, steps: int) -> Any:
    """`steps` batches of `batch` consecutive examples, wrapping around the data."""
    n = len(x)
    for i in range(steps):
        idx = (np.arange(batch) + i * batch) % n
        yield x[idx], y[idx]


def _cast(a: np.ndarray, dtype: str) -> np.ndarray:
    return a.astype(dtype) if a.dtype.kind == "f" else a


def train_parity(name_or_spec: str | Spec | Mapping[str, Any], *, steps: int = 20,
                 optimizer: str | OptimizerSpec | Mapping[str, Any] | None = "sgd",
                 loss: str | LossSpec | Mapping[str, Any] | None = None,
                 data: tuple[np.ndarray, np.ndarray] | None = None, dtype: str = "float64",
                 batch: int = 4, seed: int = 0, progress: bool = True,
                 keep_models: bool = False, **overrides: Any) -> TrainResult:
    """Train the PyTorch and the Keras build from the same initial weights on the same batches.

    `optimizer`: "sgd" (momentum 0.9), "adam", "adamw", an `OptimizerSpec` or a dict of its
    fields; `loss`: None (the head's own: cross-entropy, per-pixel cross-entropy or mse), a name
    or a `LossSpec`; `data`: (x, y) numpy arrays in canonical layout (images NCHW), read in
    consecutive batches of `batch`, wrapping around -- synthetic and seeded by default. Every
    argument and the data are checked before a framework starts. Stochastic layers are off.
    `keep_models`: the trained (PyTorch, Keras) builds are returned as `result.models` (a float64
    Keras build runs inside `nnzoo.backends.float64_scope()` on JAX and PyTorch).
    """
    _check_dtype(dtype)
    for arg, value in (("steps", steps), ("batch", batch)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(arg, value, "must be an integer >= 1")
    spec = resolve(name_or_spec, **overrides)
    opt, lossspec = optimizer_spec(optimizer), loss_spec(loss, spec)
    opt.schedule.check_run(steps, opt.lr)
    zeroed = {k: v for k, v in stochastic_fields(spec).items() if v}
    spec = deterministic(spec)
    if data is None:
        x, y = synthetic_batch(spec, lossspec, batch * steps, seed)
    elif not isinstance(data, tuple | list) or len(data) != 2:
        raise InputError("data must be a pair (x, y) of numpy arrays")
    else:
        x, y = data
    check_batch(spec, lossspec, x, y)
    x, y = _cast(x, dtype), _cast(y, dtype)
    name = name_or_spec if isinstance(name_or_spec, str) else spec.family
    result = TrainResult(name, spec, opt, lossspec, dtype, min(batch, len(x)),
                         backends.keras_backend(), zeroed)
    start = time.perf_counter()
    with _scope(dtype), _progress(progress, name, steps) as advance:
        from nnzoo.conversion import state_dict, transfer_weights

        torch_t, keras_t = _trainers(spec, opt, lossspec, dtype=dtype, seed=seed, steps=steps)
        transfer_weights(torch_t.model, keras_t.model)
        result.initial_diff = _weight_diff(torch_t.model, keras_t.model, state_dict)[0]
        atol = ATOL if dtype == "float64" else ATOL32
        for i, (xb, yb) in enumerate(_batches(x, y, result.batch, steps)):
            lr, lr_keras = torch_t.lr, keras_t.lr
            if not abs(lr - lr_keras) <= 1e-6 * lr:
                result.problems.append(f"step {i + 1}: learning rates differ: {lr} vs {lr_keras}")
            loss_t, loss_k = torch_t.step(xb, yb), keras_t.step(xb, yb)
            diff, scale = _weight_diff(torch_t.model, keras_t.model, state_dict)
            result.steps.append(TrainStep(i + 1, lr, loss_t, loss_k, diff, scale, atol))
            advance(diff)
        if keep_models:
            result.models = (torch_t.model, keras_t.model)
        del torch_t, keras_t
        guard.release(spec, dtype=dtype, copies=TRAINER_COPIES)
    result.seconds = time.perf_counter() - start
    return result


def _weight_diff(torch_model: Any, keras_model: Any, state_dict: Any) -> tuple[float, float]:
    """max |w_keras - w_torch| over every weight and statistic, and max |w_torch|."""
    a, b = state_dict(torch_model), state_dict(keras_model)
    return largest(max_abs_diff(a[k], b[k]) for k in a), largest(max_abs(a[k]) for k in a)


@contextlib.contextmanager
def _progress(show: bool, name: str, steps: int) -> Any:
    """A rich progress bar on stderr (steps done, the latest weight difference)."""
    if not show:
        yield lambda diff: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("max|dw| {task.fields[diff]}"))
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"training {name} in both frameworks", total=steps, diff="-")
        yield lambda diff: bar.update(task, advance=1, diff=f"{diff:.1e}")
