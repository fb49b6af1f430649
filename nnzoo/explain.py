"""`nnzoo explain`: a model's PyTorch and Keras forms side by side, and the differences it touches.

One row per named layer (a PyTorch module path, which is also its Keras twin's name): the
PyTorch module and the Keras layer(s) with their key arguments, the canonical output shape and
the parameter count in each backend. Keras-only helpers (explicit padding `<twin>-pad`, the NCHW
permute before a flatten, the stacked layers `lstm.l0`, `lstm.l1` of one PyTorch `lstm`) join
their twin's row; Keras layers for operations PyTorch writes inline in `forward` (residual
`add`s, a concatenation) get rows of their own. The rows' counts add up to each model's total.
Then every framework difference the model touches (see `nnzoo.differences`), measured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnzoo.links import torch_path
from nnzoo.registry import resolve
from nnzoo.runtime import ParamCount
from nnzoo.specs.base import Spec


@dataclass(eq=False)
class Row:
    path: str
    torch: str = "-"
    keras_layers: list[tuple[str, str]] = field(default_factory=list)  # (name, description)
    shape: tuple[int, ...] | str | None = None
    torch_params: int = 0
    keras_params: int = 0

    @property
    def keras(self) -> str:
        """Keras layers of the row; padding layers read 'X after ZeroPadding2D(1)', repeats 'x2'."""
        out: list[str] = []
        pending: list[str] = []
        for name, text in self.keras_layers:
            if torch_path(name).endswith(".pad"):
                pending.append(text)
                continue
            out.append(text + "".join(f" after {p}" for p in pending))
            pending = []
        out += pending
        runs: list[list[Any]] = []  # [description, repeats]
        for text in out:
            if runs and runs[-1][0] == text:
                runs[-1][1] += 1
            else:
                runs.append([text, 1])
        return " + ".join(t if n == 1 else f"{t} x{n}" for t, n in runs) or "-"

    @property
    def params(self) -> str:
        if self.torch_params == self.keras_params:
            return f"{self.torch_params:,}"
        return f"{self.torch_params:,} / {self.keras_params:,} (torch / keras)"


@dataclass
class Explanation:
    name: str
    spec: Spec
    rows: list[Row]
    torch_count: ParamCount
    keras_count: ParamCount
    differences: list[Any]
    context: Any = None  # nnzoo.differences.Context of the traced PyTorch build

    @property
    def totals_agree(self) -> bool:
        return self.torch_count == self.keras_count

    def table(self) -> str:
        head = ("layer", "PyTorch", "Keras", "output", "params")
        cells = [(r.path, r.torch, r.keras, _shape(r.shape), r.params)
                 for r in self.rows]
        widths = [max(len(head[i]), *(len(c[i]) for c in cells)) for i in range(5)]
        fmt = lambda c: "  ".join(  # noqa: E731
            f"{v:>{w}}" if i == 4 else f"{v:<{w}}" for i, (v, w) in enumerate(zip(c, widths)))
        rule = "-" * len(fmt(head))
        tc, kc = self.torch_count, self.keras_count
        verdict = "equal" if self.totals_agree else "DIFFER"
        return "\n".join([fmt(head), rule, *(fmt(c) for c in cells), rule,
                          f"total: PyTorch {tc} | Keras {kc}: {verdict}"])

    def notes(self) -> str:
        lines = [f"Framework differences this model touches ({len(self.differences)}):"]
        for d in self.differences:
            fields = [f"{f}={getattr(self.spec, f)!r}" for f in d.fields if hasattr(self.spec, f)]
            agree = "; the defaults agree, the common mistake gives" if d.defaults_agree else ""
            lines += [
                "", f"* {d.title}: PyTorch {d.pytorch}; Keras {d.keras}",
                f"  {d.explanation}",
                f"  settled by: {', '.join(fields) + ' -- ' if fields else ''}{d.settled_by}",
                f"  measured{agree}: {d.metric} = {d.effect_text()}{' ' + d.unit if d.unit else ''}"
                f" (with nnzoo's setting: {d.residual():.1g})",
            ]
            if d.in_model is not None:
                lines.append(f"  in this model: {d.in_model(self.context)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"{self.name} [{self.spec.family}]\n\n{self.table()}\n\n{self.notes()}"


def _shape(shape: Any) -> str:
    if shape is None:
        return "-"
    return shape if isinstance(shape, str) else "(" + ", ".join(map(str, shape)) + ")"


# ---- one-line descriptions of layers ---------------------------------------------------------
#: PyTorch `extra_repr` arguments that are framework defaults and add nothing to the row.
_QUIET = re.compile(r",? ?\b(dilation=1|ceil_mode=False|affine=True|track_running_stats=True|"
                    r"elementwise_affine=True|inplace=False|bias=True|output_padding=0|"
                    r"padding_mode=zeros|count_include_pad=True|return_indices=False)\b")


def _compact(text: str) -> str:
    """Same-valued pairs `(3, 3)` -> `3`; kernel_size/stride/padding -> k/s/p."""
    text = re.sub(r"\((\d+), \1\)", r"\1", text)
    for long, short in (("kernel_size=", "k="), ("stride=", "s="), ("padding=", "p="),
                        ("in_features=", ""), ("out_features=", "")):
        text = text.replace(long, short)
    return _QUIET.sub("", text).strip(", ")


def describe_torch(m: Any) -> str:
    kind = type(m).__name__
    if kind == "MultiheadAttention":
        return f"MultiheadAttention({m.embed_dim}, heads={m.num_heads}, batch_first={m.batch_first})"
    return f"{kind}({_compact(m.extra_repr())})"


#: Keras config keys worth showing, per layer class (others: none), and values left unsaid.
_KERAS_KEYS = {
    "Conv2D": ("filters", "kernel_size", "strides", "padding", "groups", "use_bias"),
    "DepthwiseConv2D": ("kernel_size", "strides", "padding", "depth_multiplier", "use_bias"),
    "Conv2DTranspose": ("filters", "kernel_size", "strides", "padding", "use_bias"),
    "Dense": ("units", "use_bias"),
    "BatchNorm": ("epsilon", "momentum"),
    "BatchNormalization": ("epsilon", "momentum"),
    "LayerNormalization": ("epsilon",),
    "GroupNormalization": ("groups", "epsilon"),
    "MaxPooling2D": ("pool_size", "strides", "padding"),
    "AveragePooling2D": ("pool_size", "strides", "padding"),
    "ZeroPadding2D": ("padding",),
    "Pad2D": ("padding", "value"),
    "Act": ("kind",),
    "Dropout": ("rate",),
    "Embedding": ("input_dim", "output_dim"),
    "RecurrentLayer": ("cell", "units", "bidirectional"),
    "SelfAttention": ("width", "heads"),
    "Permute": ("dims",),
    "UpSampling2D": ("size", "interpolation"),
    "Concatenate": ("axis",),
    "Reshape": ("target_shape",),
    "Cropping1D": ("cropping",),
}
_UNSAID = {"groups": 1, "use_bias": True, "depth_multiplier": 1, "value": 0.0, "strides": 1,
           "bidirectional": False}
_POSITIONAL = {"filters", "units", "kernel_size", "pool_size", "padding", "kind", "rate",
               "input_dim", "output_dim", "cell", "dims", "size", "width"}


def _same(value: Any) -> Any:
    """((1, 1), (1, 1)) -> 1 and (3, 3) -> 3: one number where all are equal."""
    if isinstance(value, list | tuple) and value:
        flat = [_same(v) for v in value]
        if all(not isinstance(v, list | tuple) for v in flat) and len(set(map(str, flat))) == 1:
            return flat[0]
        return tuple(flat)
    return value


def describe_keras(layer: Any) -> str:
    kind = type(layer).__name__
    config = layer.get_config()
    parts = []
    for key in _KERAS_KEYS.get(kind, ()):
        value = config.get(key)
        value = _same(value)
        if key in _UNSAID and value == _UNSAID[key]:
            continue
        text = repr(value) if isinstance(value, str) else str(value)
        bare = key in _POSITIONAL and (key != "padding" or kind in ("ZeroPadding2D", "Pad2D"))
        parts.append(text if bare else f"{key}={text}")
    return f"{kind}({', '.join(parts)})"


# ---- building the table ------------------------------------------------------------------------
def _twin(name: str, paths: dict[str, Row], weightless: set[str]) -> Row | None:
    """The row whose PyTorch module a Keras layer `name` belongs to, if any."""
    if name in paths:
        return paths[name]
    owner = max((p for p in paths if name.startswith(p + ".")), key=len, default=None)
    if owner is not None:
        return paths[owner]
    stem = re.sub(r"\d+$", "", name)  # `relu1`, `relu2`: calls of PyTorch's one `relu`
    return paths[stem] if stem != name and stem in weightless else None


def _fold(rows: list[Row], modules: dict[str, Any]) -> list[Row]:
    """A Keras layer standing for a whole PyTorch container (`pool` = Sequential(avgpool,
    flatten)) takes over that container's rows when none of them has a Keras layer of its own."""
    drop: set[str] = set()
    for row in rows:
        if row.path not in modules or not row.keras_layers or row.path in drop:
            continue
        inner = [r for r in rows if r.path.startswith(row.path + ".")]
        if inner and not any(r.keras_layers for r in inner):
            row.torch = " + ".join(r.torch for r in inner)
            row.torch_params = sum(r.torch_params for r in inner)
            drop.update(r.path for r in inner)
    return [r for r in rows if r.path not in drop]


def explain(name_or_spec: str | Spec | dict[str, Any], **overrides: Any) -> Explanation:
    """Both builds of a model, row by row, and the framework differences it touches."""
    from nnzoo import backends
    from nnzoo.differences import Context, applicable
    from nnzoo.runtime import count_params
    from nnzoo.tracing import keras_shapes, ordered, trace, units

    spec = resolve(name_or_spec, **overrides)
    name = name_or_spec if isinstance(name_or_spec, str) else spec.family
    tr = trace(spec, batch=1)
    rows: list[Row] = []
    by_path: dict[str, Row] = {}
    for u in ordered(units(tr.model), tr):
        call = tr.first(u.path)
        if u.module is None:
            shape = tr.model.state_dict(keep_vars=True)[u.path].shape
            row = Row(u.path, f"Parameter{tuple(shape)}", shape=f"param {tuple(shape)}")
        else:
            row = Row(u.path, describe_torch(u.module),
                      shape=call.outputs[0] if call and call.outputs else None)
        row.torch_params = u.params
        if u.module is not None:  # a bare parameter is placed where its Keras twin is used
            rows.append(row)
        by_path[u.path] = row
    weightless = {u.path for u in units(tr.model) if u.params == 0}
    keras_model = backends.build_native(spec, "keras")
    shapes = keras_shapes(keras_model, spec)
    previous: Row | None = None
    modules = dict(tr.model.named_modules())
    for layer in keras_model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        path = torch_path(layer.name)
        row = _twin(path, by_path, weightless)
        if row is None:  # an operation PyTorch writes inline: a row of its own, in graph order
            block = modules.get(path)
            where = f"end of {type(block).__name__}" if block is not None else "inline in forward"
            row = Row(path, f"({where})", shape=shapes.get((layer.name, 0)))
            by_path[path] = row
        if row not in rows:
            rows.insert(rows.index(previous) + 1 if previous else 0, row)
        row.keras_layers.append((layer.name, describe_keras(layer)))
        row.keras_params += sum(int(np.prod(w.shape)) for w in layer.weights)
        previous = row
    for row in rows:
        call = tr.first(row.path)
        if call is not None and call.packed and row.keras_layers:  # PyTorch: a PackedSequence
            row.shape = shapes.get((row.keras_layers[-1][0], 0), row.shape)
    rows += [r for r in by_path.values() if r not in rows]  # (bare parameters without a twin)
    rows = _fold(rows, modules)
    return Explanation(name, spec, rows, count_params(tr.model), count_params(keras_model),
                       applicable(tr), Context.of(tr))

