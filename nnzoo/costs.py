"""FLOPs and memory of a model, per layer and in total: one number that serves both backends.

The two builds are the same network, so their arithmetic is the same; nnzoo computes it once,
from the spec. The PyTorch build is made on the `meta` device (shapes, no storage, no weights:
ViT-H/14 costs nothing), run once with forward hooks, and each layer's call is priced by a
formula for its type. Multiply-adds count as 2 FLOPs; only the multiply-accumulate work is
counted (convolutions, linear layers, attention's score and value products, recurrent gate
matrix products), as `torch.utils.flop_counter` does: norms, activations, pooling and residual
additions are not. Every layer type is either priced by a formula (`FORMULAS`) or listed as
doing no multiply-accumulate work (`NO_MACS`); any other is refused with `UnknownLayerError`
naming it, never counted as 0. Two places where counters commonly go wrong are counted explicitly:

- attention: q @ k^T and softmax(..) @ v are 2 * batch * heads * q_len * k_len * head_dim
  each. PyTorch's fused attention kernels hide them from `FlopCounterMode` (it sees only the
  projections in training mode, and nothing at all on the eval fast path of MultiheadAttention).
- recurrent layers: every time step of every layer and direction (2 * gates * hidden *
  (input + hidden) per example and step), so the count grows linearly with sequence length.

Memory: parameter bytes (weights and batch-norm statistics) and activation bytes (the outputs of
every layer call, the tensors a training step keeps for the backward pass) for a batch and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nnzoo.errors import UnknownLayerError
from nnzoo.registry import resolve
from nnzoo.specs.base import Spec
from nnzoo.tracing import Call, ordered, trace, units

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def _conv(m: Any, call: Call) -> tuple[int, int]:
    """Each output element: in_channels / groups * kernel-area MACs."""
    per_out = m.in_channels // m.groups * math.prod(m.kernel_size)
    return 2 * math.prod(call.outputs[0]) * per_out, 0


def _conv_transpose(m: Any, call: Call) -> tuple[int, int]:
    """Each input element: out_channels / groups * kernel-area MACs."""
    per_in = m.out_channels // m.groups * math.prod(m.kernel_size)
    return 2 * math.prod(call.inputs[0]) * per_in, 0


def _linear(m: Any, call: Call) -> tuple[int, int]:
    rows = math.prod(call.inputs[0]) // m.in_features
    return 2 * rows * m.in_features * m.out_features, 0


#: Layer types that do no multiply-accumulate work: 0 FLOPs by this counter's convention
#: (activations, normalization, pooling, dropout, reshaping, an embedding's lookup, resizing).
NO_MACS = frozenset({
    "ReLU", "ReLU6", "LeakyReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "Hardswish", "Hardsigmoid",
    "HardSigmoid",
    "Softmax",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "LayerNorm2d", "GroupNorm",
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
    "Dropout", "Dropout1d", "Dropout2d", "StochasticDepth", "Permute",
    "Flatten", "Unflatten", "Identity", "Embedding", "Upsample",
})


def call_flops(call: Call) -> tuple[int, int]:
    """(FLOPs, of which attention score/value products) of one call at the traced batch.

    Raises `UnknownLayerError` for a layer type with no formula and not in `NO_MACS`: a count
    that silently left a layer out would be wrong without saying so.
    """
    m, kind = call.module, type(call.module).__name__
    if kind in NO_MACS:
        return 0, 0
    formula = FORMULAS.get(kind)
    if formula is None:
        raise UnknownLayerError(f"the FLOPs counter has no formula for {kind} ({call.path})")
    return formula(m, call) if call.inputs and call.outputs else (0, 0)


def _attention(m: Any, call: Call) -> tuple[int, int]:
    q, k = call.inputs[0], call.inputs[1] if len(call.inputs) > 1 else call.inputs[0]
    if m.batch_first:
        (b, tq, e), tk = q, k[1]
    else:
        (tq, b, e), tk = q, k[0]
    projections = 2 * b * (tq * e * e + tk * m.kdim * e + tk * m.vdim * e + tq * e * e)  # q k v out
    products = 2 * (2 * b * m.num_heads * tq * tk * m.head_dim)  # q @ k^T, then @ v
    return projections + products, products


def _recurrent(m: Any, call: Call, gates: int) -> int:
    """Every step of every layer and direction: gates * hidden * (input + hidden) MACs each."""
    shape = call.inputs[0]
    steps = shape[0] if call.packed else math.prod(shape[:-1])  # (rows, F) or (B, T, F)
    dirs, h = 2 if m.bidirectional else 1, m.hidden_size
    total = 0
    for layer in range(m.num_layers):
        width = m.input_size if layer == 0 else h * dirs
        total += dirs * 2 * gates * h * (width + h) * steps
    return total


Formula = Callable[[Any, Call], tuple[int, int]]


def _rnn(gates: int) -> Formula:
    return lambda m, call: (_recurrent(m, call, gates), 0)


#: One formula per layer type that multiplies: (module, call) -> (FLOPs, attention part).
FORMULAS: dict[str, Formula] = {
    **dict.fromkeys(("Conv1d", "Conv2d", "Conv3d"), _conv),
    **dict.fromkeys(("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"), _conv_transpose),
    **dict.fromkeys(("Linear", "NonDynamicallyQuantizableLinear"), _linear),
    "MultiheadAttention": _attention,
    "LSTM": _rnn(4), "GRU": _rnn(3), "RNN": _rnn(1),
}


#: Every layer type the counter prices (possibly at 0).
KNOWN = NO_MACS | set(FORMULAS)


# ---- the cost table --------------------------------------------------------------------------
@dataclass
class LayerCost:
    path: str
    kind: str
    output: tuple[int, ...] | None  # canonical, batch 1
    params: int
    flops: int  # at batch 1
    attention: int  # of which attention score/value products
    activations: int  # output elements of all its calls, batch 1


@dataclass
class Cost:
    """FLOPs and memory of one model; `batch` scales everything computed at batch 1."""

    name: str
    spec: Spec
    layers: list[LayerCost] = field(default_factory=list)
    trainable: int = 0
    state: int = 0
    batch: int = 1
    dtype: str = "float32"
    output: tuple[int, ...] | None = None  # the model's output shape at batch 1

    @property
    def flops(self) -> int:
        return self.batch * sum(c.flops for c in self.layers)

    @property
    def attention_flops(self) -> int:
        return self.batch * sum(c.attention for c in self.layers)

    @property
    def params(self) -> int:
        return self.trainable + self.state

    @property
    def param_bytes(self) -> int:
        return self.params * DTYPE_BYTES[self.dtype]

    @property
    def activation_bytes(self) -> int:
        return self.batch * sum(c.activations for c in self.layers) * DTYPE_BYTES[self.dtype]

    def __str__(self) -> str:
        lines = [f"{'layer':<40} {'type':<20} {'output':<20} {'params':>12} {'FLOPs':>10} "
                 f"{'activations':>11}"]
        for c in self.layers:
            lines.append(f"{c.path:<40} {c.kind:<20} {str(c.output or '-'):<20} {c.params:>12,} "
                         f"{human(c.flops * self.batch):>10} "
                         f"{human(c.activations * self.batch * DTYPE_BYTES[self.dtype], 'B'):>11}")
        lines.append(f"total ({self.name}, batch {self.batch}, {self.dtype}): {human(self.flops, 'FLOP')}"
                     f" (attention products {human(self.attention_flops, 'FLOP')}), "
                     f"{self.params:,} parameters = {human(self.param_bytes, 'B')}, "
                     f"activations {human(self.activation_bytes, 'B')}")
        return "\n".join(lines)


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M', (1234567, 'FLOP') -> '1.23 MFLOP'; bytes use 1024s ('MiB')."""
    base, names = (1024.0, ("", "Ki", "Mi", "Gi", "Ti")) if unit == "B" else \
        (1000.0, ("", "K", "M", "G", "T"))
    i = 0
    while abs(n) >= base and i < len(names) - 1:
        n, i = n / base, i + 1
    return f"{n:.3g} {names[i]}{unit}".rstrip()


def flops(name_or_spec: str | Spec | dict[str, Any], *, batch: int = 1, dtype: str = "float32",
          **overrides: Any) -> Cost:
    """FLOPs (multiply-adds = 2) and memory per layer and in total, for both backends at once."""
    from nnzoo.errors import SpecError

    if dtype not in DTYPE_BYTES:
        raise SpecError("dtype", dtype, f"one of {', '.join(DTYPE_BYTES)}")
    if not isinstance(batch, int) or batch < 1:
        raise SpecError("batch", batch, "an int >= 1")
    spec = resolve(name_or_spec, **overrides)
    name = name_or_spec if isinstance(name_or_spec, str) else spec.family
    tr = trace(spec, batch=1)
    cost = Cost(name, spec, batch=batch, dtype=dtype, output=tr.output)
    by_path: dict[str, list[Call]] = {}
    for c in tr.calls:
        by_path.setdefault(c.path, []).append(c)
    layers = ordered(units(tr.model), tr)
    unknown = sorted({f"{u.path} ({type(u.module).__name__})" for u in layers
                      if u.module is not None and type(u.module).__name__ not in KNOWN})
    if unknown:
        raise UnknownLayerError("the FLOPs counter has no formula for these layer types (add "
                                "one to nnzoo/costs.py FORMULAS, or to NO_MACS if they do no "
                                "multiply-accumulate work):", unknown)
    for u in layers:
        calls = by_path.get(u.path, [])
        priced = [call_flops(c) for c in calls]
        out = calls[0].outputs[0] if calls and calls[0].outputs else None
        cost.layers.append(LayerCost(
            u.path, type(u.module).__name__ if u.module is not None else "Parameter", out, u.params,
            sum(f for f, _ in priced), sum(a for _, a in priced),
            sum(math.prod(s) for c in calls for s in c.outputs)))
        cost.trainable += u.trainable
        cost.state += u.state
    return cost
