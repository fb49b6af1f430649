"""Tracing: one forward pass of a model's builds, recorded with the shape of every call.

The PyTorch build runs on the `meta` device (shapes, no storage) with a hook on every module;
the Keras build is traced symbolically. `explain`, `diagram`, the differences registry and the
FLOPs counter all read these records instead of running models of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnzoo.specs.base import Spec


# ---- tracing the PyTorch build ---------------------------------------------------------------
@dataclass
class Call:
    """One call of a module: tensor input shapes and output shapes (batch 1 unless stated)."""

    path: str
    module: Any
    inputs: list[tuple[int, ...]]
    outputs: list[tuple[int, ...]]
    packed: bool = False  # the first input was a PackedSequence (inputs[0]: its data rows)


@dataclass
class Trace:
    """A PyTorch build of `spec` and every module call of one forward pass, in order."""

    spec: Spec
    model: Any
    calls: list[Call]
    batch: int
    device: str
    output: tuple[int, ...] | None = None  # the model's (first) output shape

    def first(self, path: str) -> Call | None:
        return next((c for c in self.calls if c.path == path), None)


def _shapes(value: Any) -> tuple[list[tuple[int, ...]], bool]:
    """Shapes of the tensors in a (nested) value; PackedSequence counts as its data tensor."""
    import torch
    from torch.nn.utils.rnn import PackedSequence

    if isinstance(value, PackedSequence):
        return [tuple(value.data.shape)], True
    if isinstance(value, torch.Tensor):
        return [tuple(value.shape)], False
    if isinstance(value, tuple | list):
        shapes: list[tuple[int, ...]] = []
        packed = False
        for i, v in enumerate(value):
            s, p = _shapes(v)
            shapes += s
            packed = packed or (i == 0 and p)
        return shapes, packed
    return [], False


def _run(spec: Spec, batch: int, device: str) -> Trace:
    import numpy as np
    import torch

    from nnzoo import backends

    backends.require("torch")
    calls: list[Call] = []

    def hook(module: Any, args: Any, kwargs: Any, output: Any, path: str = "") -> None:
        inputs, packed = _shapes([*args, *kwargs.values()])
        outputs, _ = _shapes(output)
        calls.append(Call(path, module, inputs, outputs, packed))

    with torch.device(device):  # seeded: the caller's random state is left alone
        model = backends.build_native(spec, "torch", seed=0)
    model.eval()
    handles = [m.register_forward_hook(lambda m, a, k, o, p=p: hook(m, a, k, o, p), with_kwargs=True)
               for p, m in model.named_modules() if p]
    x = torch.from_numpy(np.ascontiguousarray(spec.example_input(batch, seed=0))).to(device)
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        for h in handles:
            h.remove()
    out = _shapes(y)[0]
    return Trace(spec, model, calls, batch, device, out[0] if out else None)


def trace(spec: Spec, batch: int = 1) -> Trace:
    """Run the PyTorch build once with hooks: on `meta` (free), or on the CPU if meta fails.

    Meta tensors carry shapes only; a build that must read values (packing padded token
    sequences reads their lengths) falls back to a real, still small, CPU run.
    """
    try:
        return _run(spec, batch, "meta")
    except Exception:  # an op without a meta kernel, or one that reads tensor values
        return _run(spec, batch, "cpu")


# ---- layers: the rows of `explain` and of the cost table -------------------------------------
@dataclass
class Unit:
    """A named layer: a leaf module, a module holding its own weights (MultiheadAttention: its
    `out_proj` goes with it), or a bare parameter (ViT's `class_token`)."""

    path: str
    module: Any | None
    trainable: int = 0
    state: int = 0

    @property
    def params(self) -> int:
        return self.trainable + self.state


#: Modules that are not layers: containers (even empty ones) and `Identity` placeholders.
PLACEHOLDERS = ("Identity", "Sequential", "ModuleList", "ModuleDict")


def units(model: Any) -> list[Unit]:
    """Every named layer of a PyTorch build; their parameters sum to `count_params(model)`."""
    chosen: dict[str, Unit] = {}
    for path, m in model.named_modules():
        if not path or any(path.startswith(u + ".") for u in chosen):
            continue
        if type(m).__name__ in PLACEHOLDERS:
            continue
        children = list(m.children())
        own = list(m.parameters(recurse=False)) + list(m.buffers(recurse=False))
        absorbs = own and all(not list(c.children()) for c in children)
        if not children or absorbs:
            chosen[path] = Unit(path, m)
    params = dict(model.named_parameters())
    for key, t in model.state_dict(keep_vars=True).items():
        if key.endswith("num_batches_tracked"):
            continue
        owner = max((u for u in chosen if key.startswith(u + ".")), key=len, default=None)
        unit = chosen[owner] if owner else chosen.setdefault(key, Unit(key, None))
        if key in params and params[key].requires_grad:
            unit.trainable += t.numel()
        else:
            unit.state += t.numel()
    return list(chosen.values())


def ordered(units_: list[Unit], tr: Trace) -> list[Unit]:
    """Units in execution order; ones never called as modules keep their registration place."""
    first = {}
    for i, c in enumerate(tr.calls):
        first.setdefault(c.path, i)
    keys, last = [], -1.0
    for j, u in enumerate(units_):
        last = first.get(u.path, last + 1e-3)
        keys.append((last, j))
    return [u for _, u in sorted(zip(keys, units_), key=lambda t: t[0])]


# ---- FLOP formulas, one per layer type -----------------------------------------------------


def keras_shapes(model: Any, spec: Spec) -> dict[tuple[str, int], tuple[int, ...]]:
    """(layer name, output index) -> that output's shape on the example input (batch 1),
    canonical layout. Traced symbolically: nothing is computed."""
    import keras

    from nnzoo.layout import to_keras

    keys, outs = [], []
    for layer in model.operations:  # layers, and keras.ops calls in the graph
        produced = layer.output if isinstance(layer.output, list | tuple) else [layer.output]
        for i, t in enumerate(produced):
            keys.append((layer.name, i))
            outs.append(t)
    probe = keras.Model(model.inputs, outs)
    x = to_keras(spec.example_input(1), spec.input_kind)
    specs = probe.compute_output_spec(keras.KerasTensor(x.shape, dtype=str(x.dtype)))
    specs = specs if isinstance(specs, list | tuple) else [specs]
    shapes = {}
    for key, s in zip(keys, specs):
        shape = tuple(s.shape)
        if len(shape) == 4 and spec.input_kind == "image":
            shape = (shape[0], shape[3], shape[1], shape[2])
        shapes[key] = shape
    return shapes
