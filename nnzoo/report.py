"""`nnzoo report`: the whole zoo in one markdown page and one figure.

For every registered model: its family, parameter counts in both backends, FLOPs and memory
(`nnzoo.flops`, from the spec), and a parity verdict on counts and output shapes. It is meant to
be quick enough for `make demo`:
- the PyTorch side is traced on the `meta` device (no weights are made, whatever the size);
- the Keras side is really built, to count its weights, and its output shape is traced
  symbolically (no forward pass). Models above `max_params` are not built in Keras (the
  report says so); `quick=True` builds none. Numeric agreement is `nnzoo parity --numeric`'s job.

The figure compares parameter counts and FLOPs across the zoo on log scales (matplotlib, Agg).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnzoo.costs import Cost, flops, human

#: Default limit for building the Keras twin (covers ResNet-152, not ViT-L/H).
MAX_PARAMS = 100_000_000


@dataclass
class Entry:
    name: str
    cost: Cost
    keras: tuple[int, int] | None = None  # (trainable, state)
    verdict: str = "not checked"
    seconds: float = 0.0


def _keras_check(cost: Cost) -> tuple[tuple[int, int], str]:
    """Build the Keras twin: its counts, and its output shape traced symbolically."""
    from nnzoo import backends, parity
    from nnzoo.layout import from_keras, to_keras
    from nnzoo.runtime import ParamCount

    spec = cost.spec
    model = backends.build_native(spec, "keras")  # first: it imports TensorFlow quietly
    import keras

    c = parity.count_params(model)
    x = to_keras(spec.example_input(2), spec.input_kind)
    out = model.compute_output_spec(keras.KerasTensor(x.shape, dtype=str(x.dtype)))
    shape = from_keras(np.empty(out.shape, "int8"), spec.output_kind).shape
    counts = {"torch": ParamCount(cost.trainable, cost.state), "keras": c}
    problems = parity.structural_problems(counts, {"keras": tuple(shape)}, spec.output_shape(2))
    del model
    keras.backend.clear_session()
    return (c.trainable, c.non_trainable), ("FAIL: " + "; ".join(problems)) if problems else "OK"


def collect(names: Sequence[str], *, quick: bool = False, max_params: int = MAX_PARAMS,
            progress: Callable[[Entry], None] | None = None) -> list[Entry]:
    from nnzoo.errors import NnzooError

    entries = []
    for name in names:
        start = time.perf_counter()
        cost = flops(name)
        entry = Entry(name, cost)
        if cost.output != cost.spec.output_shape(1):
            entry.verdict = f"FAIL: torch output {cost.output} != {cost.spec.output_shape(1)}"
        elif quick:
            entry.verdict = "not checked (--quick)"
        elif cost.params > max_params:
            entry.verdict = f"not built in Keras ({human(cost.params)} > {human(max_params)} params)"
        else:
            try:
                entry.keras, entry.verdict = _keras_check(cost)
            except NnzooError:
                raise
            except Exception as exc:  # a build failure is a finding, not a crash of the report
                entry.verdict = f"FAIL: keras: {type(exc).__name__}: {exc}"
        entry.seconds = time.perf_counter() - start
        entries.append(entry)
        if progress:
            progress(entry)
    return entries


def figure(entries: list[Entry], path: Path) -> Path:
    """Two horizontal bar charts, parameters and GFLOPs (log scale), coloured by family."""
    try:
        import matplotlib
    except ImportError:
        from nnzoo.errors import NnzooError

        raise NnzooError("the report's figure needs matplotlib: pip install matplotlib "
                         "(it is in nnzoo's dev extra)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(entries, key=lambda e: e.cost.params)
    families = sorted({e.cost.spec.family for e in rows})
    colors = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    fig, axes = plt.subplots(1, 2, figsize=(13, 1.2 + 0.3 * len(rows)), sharey=True)
    y = range(len(rows))
    bars = [("parameters", [e.cost.params for e in rows]),
            ("FLOPs per example (multiply-add = 2)", [max(e.cost.flops, 1) for e in rows])]
    for ax, (title, values) in zip(axes, bars):
        ax.barh(list(y), values, color=[colors[e.cost.spec.family] for e in rows])
        ax.set_xscale("log")
        ax.set_title(title, fontsize=11)
        ax.grid(axis="x", which="major", alpha=0.4)
        for i, v in zip(y, values):
            ax.text(v, i, f" {human(v)}", va="center", fontsize=7)
        ax.margins(x=0.25)
    axes[0].set_yticks(list(y), [e.name for e in rows], fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[f]) for f in families]
    fig.legend(handles, families, loc="lower center", ncol=len(families), fontsize=9,
               frameon=False)
    fig.suptitle("nnzoo: the zoo at a glance (one spec, both backends)", fontsize=12)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(entries: list[Entry], image: str, quick: bool, max_params: int) -> str:
    lines = [
        "# The nnzoo zoo",
        "",
        "Written by `nnzoo report`. Counts: PyTorch parameters + state (batch-norm statistics) "
        "from the PyTorch build traced on the `meta` device; Keras from the real Keras build "
        + ("(skipped: `--quick`)." if quick else f"(models up to {human(max_params)} parameters)."),
        "Parity here means equal counts and output shapes equal to the spec's (Keras traced "
        "symbolically); `nnzoo parity NAME --numeric` also compares outputs after weight transfer.",
        "FLOPs: one example on the spec's example input, multiply-add = 2, attention products and "
        "every recurrent time step included (`nnzoo flops NAME` per layer). Memory: float32 "
        "parameters and the outputs of every layer for one example.",
        "",
        f"![parameters and FLOPs across the zoo]({image})",
        "",
        "| model | family | input | params (PyTorch) | params (Keras) | GFLOPs | weights | "
        "activations | parity |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for e in entries:
        c = e.cost
        keras = f"{sum(e.keras):,}" if e.keras else "-"
        shape = "x".join(map(str, c.spec.input_shape()))
        lines.append(f"| `{e.name}` | {c.spec.family} | {shape} | {c.params:,} | {keras} | "
                     f"{c.flops / 1e9:.3g} | {human(c.param_bytes, 'B')} | "
                     f"{human(c.activation_bytes, 'B')} | {e.verdict} |")
    ok = sum(e.verdict == "OK" for e in entries)
    lines += ["", f"{ok}/{len(entries)} models checked OK; "
              f"{sum(e.verdict.startswith('FAIL') for e in entries)} failed."]
    return "\n".join(lines) + "\n"


def write_report(out: str | Path, names: Sequence[str] | None = None, *, quick: bool = False,
                 max_params: int = MAX_PARAMS,
                 progress: Callable[[Entry], None] | None = None) -> tuple[Path, list[Entry]]:
    """Write `DIR/README.md` and `DIR/zoo.png`; returns the markdown path and the entries."""
    from nnzoo.registry import list_models

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = collect(list(names) if names else list_models(), quick=quick,
                      max_params=max_params, progress=progress)
    figure(entries, out / "zoo.png")
    md = out / "README.md"
    md.write_text(markdown(entries, "zoo.png", quick, max_params), encoding="utf-8")
    return md, entries
