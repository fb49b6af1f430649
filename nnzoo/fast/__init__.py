"""The fast inference path in one call: `nnzoo.optimize(model, example)`.

Which way of running a model is fastest depends on the machine, not only on the framework: on a
2-core Intel Xeon, channels-last PyTorch ran ResNet-50 at batch 16 in 0.67x the eager time; on a
2-core AMD EPYC it was slower than eager, and torch.compile with inductor freezing was fastest
(issue 18's table). So `optimize` does not apply one recipe: it times the candidate paths of the
model's framework (`nnzoo.fast.paths`) on this machine, for the input it is given, checks that
each computes what the plain call computes, and returns the fastest (`nnzoo.fast.tuning`). The
choice is cached on disk (`nnzoo.fast.cache`), so a second process pays no tuning.

Importing this package imports no framework; `optimize` imports the one the model belongs to.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from nnzoo.errors import InputError, NotAModelError, OptimizeError
from nnzoo.fast import cache as _cache
from nnzoo.fast.paths import Path, fixed_path, input_signature, label, paths_for

__all__ = ["FastModel", "OptimizeError", "Report", "input_signature", "optimize"]

DEFAULT_BUDGET_S = 30.0


@dataclass
class Report:
    """What `optimize` chose and why: every path with its median time or why it has none.

    `paired` in a path's row is what ranks them: the median over timed rounds of its time over
    the same round's time of the path with the lowest median (`nnzoo.fast.tuning.scores`).
    """

    backend: str  # "torch" or "keras/<backend>"
    choice: str
    what: str
    source: str  # "tuned", "cache" or "fixed recipe"
    inputs: list[list[Any]] = field(default_factory=list)  # [shape, dtype] per input
    paths: list[dict[str, Any]] = field(default_factory=list)
    tuning_s: float = 0.0
    budget_s: float = 0.0
    compile: bool | None = None
    machine: str = ""
    note: str = ""
    cache_file: str = ""

    @property
    def times_s(self) -> dict[str, float]:
        """Path -> median seconds per call, for the paths that were timed."""
        return {p["path"]: p["median_s"] for p in self.paths if p.get("median_s") is not None}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    def shape_text(self) -> str:
        return ", ".join(f"{tuple(s)} {d}" for s, d in self.inputs) or "no example"

    def __str__(self) -> str:
        head = (f"nnzoo.optimize on {self.backend}, input {self.shape_text()}: {self.choice} "
                f"({self.what})")
        if self.source == "fixed recipe":
            return head + f"; fixed recipe{': ' + self.note if self.note else ''}"
        how = (f"tuned in {self.tuning_s:.1f} s of a {self.budget_s:g} s budget"
               if self.source == "tuned" else "from the cache, tuned earlier")
        lines = [f"{head}; {how} on {self.machine}", "", f"  {'path':30} {'median ms':>10} "
                 f"{'min-max ms':>19} {'paired':>7} {'first ms':>9}  status"]
        for p in self.paths:
            ms = lambda k, p=p: f"{p[k] * 1e3:.2f}" if p.get(k) is not None else "-"  # noqa: E731
            spread = f"{ms('min_s')}-{ms('max_s')}" if p.get("min_s") is not None else "-"
            paired = f"{p['paired']:.3f}x" if p.get("paired") is not None else "-"
            mark = "<- chosen" if p["path"] == self.choice else p["status"]
            note = f": {p['note']}" if p.get("note") else ""
            lines.append(f"  {p['path']:30} {ms('median_s'):>10} {spread:>19} {paired:>7} "
                         f"{ms('first_s'):>9}  {mark}{note}")
        return "\n".join(lines)


class FastModel:
    """A model prepared for inference: call it like the model, on the model's native layout.

    `model` is the model itself (for PyTorch in eval mode, and channels-last if that path won);
    `backend` is "torch" or "keras"; `path` the chosen path's name; `report` what was measured.
    Outputs are what the chosen path returns: a tensor of the framework, or on Keras's predict
    path a numpy array (`nnzoo.runtime.to_numpy` takes either).
    """

    def __init__(self, fn: Any, model: Any, backend: str, description: str,
                 report: Report | None = None) -> None:
        self._fn = fn
        self.model = model
        self.backend = backend
        self.description = description
        self.report = report

    @property
    def path(self) -> str:
        return self.report.choice if self.report else self.description

    def __call__(self, *inputs: Any) -> Any:
        return self._fn(*inputs)

    def __repr__(self) -> str:
        r = self.report
        if r is None or not r.times_s:
            return f"FastModel({self.backend}: {self.description})"
        times = ", ".join(f"{k} {v * 1e3:.3g}" for k, v in r.times_s.items())
        return (f"FastModel({r.backend}: {r.choice} for {r.shape_text()}; {r.source}, median "
                f"ms: {times})")


def optimize(model: Any, example: Any = None, *, compile: bool | None = None,
             autotune: bool = True, budget: float = DEFAULT_BUDGET_S, cache: bool = True,
             progress: bool | None = None) -> FastModel:
    """Return a callable that runs `model` for inference on the fastest path measured here.

    example: one input batch (or a tuple of them) in the model's native layout (NCHW images for
      PyTorch, NHWC for Keras), numpy or a framework tensor: the paths are timed on its shape and
      dtype. Default: an nnzoo build's `spec.example_input(1)` (batch 1); tune with the batch
      size you will run, since the fastest path changes with it. Other shapes still work on the
      chosen path, which is then simply not tuned for them.
    compile: the paths that run a compiler (torch.compile, XLA on TensorFlow; jax.jit is
      JAX's ordinary path and always tried) are tried when True, never when False, and by
      default only when their predicted compile time fits in the budget left (torch.compile
      takes 20 s to minutes on a small CPU, so by default it is tried only with a budget that
      fits it).
    autotune: False skips all measuring and applies a fixed recipe: PyTorch eval +
      inference_mode (+ channels-last for images; + torch.compile with compile=True); Keras on
      TensorFlow `tf.function` (+ XLA with compile=True), on JAX `jax.jit` of the stateless call,
      on PyTorch the eager call under no_grad (+ torch.compile with compile=True).
    budget: seconds of tuning, about: a path under way is not interrupted, and the plain call
      and one timed round always run.
    cache: read and write the choice in `nnzoo.fast.cache.cache_file()` (`$NNZOO_CACHE`), keyed
      by machine, framework versions, model, input shapes and these settings.
    progress: a progress bar on stderr; default: when stderr is a terminal.

    PyTorch models are put in eval mode in place (and converted to channels-last in place when
    that path wins). Inductor freezing folds the weights into the compiled code, which does not
    see later changes to them: call `optimize` again after changing the weights (JAX's `jit`
    path reads them at each call). Every path's
    outputs are checked against the plain call's by nnzoo.parity's float32 criterion; a path
    that fails or disagrees is reported and never chosen.
    """
    try:
        which = label(model)
    except TypeError as exc:
        raise NotAModelError(f"nnzoo.optimize takes a torch.nn.Module or a keras.Model, got "
                             f"{type(model).__name__}") from exc
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget > 0:
        raise OptimizeError(f"budget={budget!r} is invalid: seconds of tuning, a number > 0")
    if not isinstance(autotune, bool):
        raise OptimizeError(f"autotune={autotune!r} is invalid: True (measure the paths) or "
                            "False (the fixed recipe)")
    if compile is not None and not isinstance(compile, bool):
        raise OptimizeError(f"compile={compile!r} is invalid: True, False or None (when the "
                            "budget allows)")
    if which == "torch":
        model.eval()
    inputs = _inputs(model, which, example)
    if not autotune or inputs is None:
        note = "" if autotune else "autotune=False"
        if inputs is None:
            note = "no example input, and the model has no spec to make one (pass example=)"
        return _fixed(model, which, bool(compile), inputs, note)
    shapes = _shapes(inputs)
    parts = {"backend": which, "env": _cache.environment(which),
             "model": _cache.model_identity(model, which), "inputs": shapes,
             "compile": compile, "budget": budget}
    key = _cache.key_of(parts)
    candidates = {p.name: p for p in paths_for(model)}
    machine = f"{parts['env']['cpu']}, {parts['env']['cores']} cores"
    if cache:
        entry = _cache.load(key)
        if entry and entry.get("choice") in candidates:
            report = Report.from_dict({**entry["report"], "source": "cache",
                                       "cache_file": str(_cache.cache_file())})
            return _adopt(model, which, candidates[report.choice], None, report)
    return _tune(model, which, list(candidates.values()), inputs, shapes, compile, budget,
                 machine, key if cache else None, progress)


def _tune(model: Any, which: str, candidates: list[Path], inputs: tuple[Any, ...],
          shapes: list[list[Any]], compile: bool | None, budget: float, machine: str,
          key: str | None, progress: bool | None) -> FastModel:
    from nnzoo.fast import tuning

    show = sys.stderr.isatty() if progress is None else progress
    start = time.perf_counter()
    trials = tuning.tune(model, which, candidates, inputs, budget=budget, compile=compile,
                         show=show)
    chosen = tuning.choose(trials)
    assert chosen is not None  # the plain call always runs, or raised
    score = tuning.scores(tuning.timed(trials))
    rows = []
    for t in trials:
        s = sorted(t.samples)
        rows.append({"path": t.path.name, "status": t.status, "note": t.note,
                     "median_s": t.median_s, "min_s": s[0] if s else None,
                     "max_s": s[-1] if s else None, "first_s": t.first_s, "repeats": len(s),
                     "calls": t.calls, "max_diff": t.max_diff,
                     "paired": score.get(t.path.name)})
    report = Report(which, chosen.path.name, chosen.path.what, "tuned", shapes, rows,
                    round(time.perf_counter() - start, 2), budget, compile, machine)
    if key is not None:
        written = _cache.store(key, {"choice": chosen.path.name, "report": report.to_dict(),
                                     "tuned_at": time.strftime("%Y-%m-%d %H:%M:%S")})
        report.cache_file = str(written or "")
    ready = None if chosen.path.copies else chosen.call
    return _adopt(model, which, chosen.path, ready, report)


def _adopt(model: Any, which: str, path: Path, call: Any, report: Report) -> FastModel:
    """The chosen path on the model itself (`call`: already prepared on it, else made now)."""
    fn = call if call is not None else path.make(model)
    return FastModel(fn, model, "torch" if which == "torch" else "keras",
                     f"{path.name}: {path.what}", report)


def _fixed(model: Any, which: str, compile: bool, inputs: Any, note: str) -> FastModel:
    path = fixed_path(model, compile)
    shapes = _shapes(inputs or ())
    report = Report(which, path.name, path.what, "fixed recipe", shapes, compile=compile,
                    note=note)
    return _adopt(model, which, path, None, report)


def _shapes(inputs: tuple[Any, ...]) -> list[list[Any]]:
    """[shape, dtype name] of each input ("float32", whichever framework's tensor it is)."""
    return [[[int(d) for d in x.shape], str(x.dtype).replace("torch.", "").replace(
        "<dtype: '", "").replace("'>", "")] for x in inputs]


def _inputs(model: Any, which: str, example: Any) -> tuple[Any, ...] | None:
    """The example as a tuple of framework tensors on the model's device (None: none to be had)."""
    if example is None:
        spec = getattr(model, "spec", None)
        if spec is None or not hasattr(spec, "example_input"):
            return None
        from nnzoo.layout import to_keras

        x = spec.example_input(1, seed=0)
        example = x if which == "torch" else to_keras(x, spec.input_kind)
    xs = tuple(example) if isinstance(example, tuple | list) else (example,)
    try:
        return _tensors(model, which, xs)
    except (TypeError, ValueError, RuntimeError) as exc:
        kinds = ", ".join(type(x).__name__ for x in xs)
        raise InputError(f"example: cannot make a tensor of {kinds} ({exc}); pass a numpy array "
                         "or a tensor of the model's framework (or a tuple of them)") from exc


def _tensors(model: Any, which: str, xs: tuple[Any, ...]) -> tuple[Any, ...]:
    import numpy as np

    if which == "torch":
        import torch

        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
        return tuple(torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x,
                                     device=device) for x in xs)
    import keras

    return tuple(keras.ops.convert_to_tensor(x) for x in xs)
