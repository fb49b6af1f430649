"""THE registry of PyTorch/Keras differences that change a network, each measured by nnzoo.

Every entry says what each framework does, why it matters, which spec field (or nnzoo layer)
settles it, which models it touches (`applies`, a predicate over a traced PyTorch build), and
carries a probe: a small pair of real PyTorch and Keras layers run on the same seeded data.
`measure()` is the error had the choice been left to the frameworks' defaults (or, where the
defaults agree, to the common mistake); `residual()` is what remains with nnzoo's explicit
setting (<= 1e-5). Results are cached per process.

    python -m nnzoo.differences --write docs/framework-differences.md   # regenerate the doc
    python -m nnzoo.differences --check docs/framework-differences.md   # exit 1 if stale

Each probe is a few lines and sits just above the registry, next to the prose it proves.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np


@dataclass
class Context:
    """What a predicate may look at: the spec, and a traced PyTorch build (modules, shapes)."""

    spec: Any
    modules: dict[str, Any]
    inputs: dict[str, list[tuple[int, ...]]]

    @classmethod
    def of(cls, trace: Any) -> Context:
        inputs: dict[str, list[tuple[int, ...]]] = {}
        for c in trace.calls:
            inputs.setdefault(c.path, c.inputs)
        return cls(trace.spec, dict(trace.model.named_modules()), inputs)

    def find(self, *kinds: str, where: Callable[[Any], bool] = lambda m: True) -> list[str]:
        """Paths of modules of these class names that satisfy `where`."""
        return [path for path, m in self.modules.items()
                if type(m).__name__ in kinds and where(m)]

    def has(self, *kinds: str, where: Callable[[Any], bool] = lambda m: True) -> bool:
        return bool(self.find(*kinds, where=where))


def _nonzero(value: Any) -> bool:
    values = value if isinstance(value, tuple) else (value,)
    return any(v != 0 for v in values) if not isinstance(value, str) else value != "valid"


def _strided(m: Any) -> bool:
    stride = m.stride if isinstance(m.stride, tuple) else (m.stride,)
    return any(s > 1 for s in stride) and _nonzero(m.padding)


def _flattens_image(ctx: Context) -> bool:
    """A Flatten that receives a feature map larger than 1x1 (its order then matters)."""
    return any(len(s) == 4 and s[2] * s[3] > 1
               for path in ctx.find("Flatten") for s in ctx.inputs.get(path, [])[:1])


def _lstm_biases(ctx: Context) -> int:
    """The parameters a stock Keras LSTM stack would lack: 4 x hidden per layer and direction."""
    mods = [ctx.modules[p] for p in ctx.find("LSTM")]
    return sum(4 * m.hidden_size * m.num_layers * (2 if m.bidirectional else 1) for m in mods)


BN = ("BatchNorm1d", "BatchNorm2d")
WEIGHTED = ("Linear", "Conv1d", "Conv2d", "ConvTranspose2d", "LSTM", "GRU", "MultiheadAttention")


@dataclass(frozen=True)
class Difference:
    id: str
    title: str
    pytorch: str
    keras: str
    explanation: str
    settled_by: str  # how nnzoo settles it
    fields: tuple[str, ...]  # the spec fields that settle it, where a spec has them
    applies: Callable[[Context], bool]
    probe: Callable[[bool], float]  # probe(settled) -> effect size
    metric: str  # what `measure()` measures, in words
    unit: str = ""  # "" for a difference of values; "parameters" for counts
    defaults_agree: bool = False  # then measure() is the effect of the common mistake
    in_model: Callable[[Context], str] | None = None  # the effect's size in a given model

    def measure(self) -> float:
        """The effect had the choice been left to defaults (seeded, so it is deterministic)."""
        return _measured(self.id, False)

    def residual(self) -> float:
        """The same probe with nnzoo's explicit settings (<= 1e-5)."""
        return _measured(self.id, True)

    def effect_text(self, value: float | None = None) -> str:
        v = self.measure() if value is None else value
        return f"{sig2(v):,}" if self.unit else f"{sig2(v):g}"


def sig2(x: float) -> float | int:
    """Round to 2 significant digits (integers of a count stay integers)."""
    if x == 0:
        return 0
    if float(x).is_integer() and abs(x) >= 1:
        return int(x) if abs(x) < 100 else int(float(f"{x:.2g}"))
    return float(f"{x:.2g}")


# ---- probes: a seeded PyTorch layer and its Keras twin on the same data ----------------------
# Each probe(settled) returns an effect size: settled=False leaves the choice to the frameworks'
# defaults (or makes the common mistake), settled=True uses nnzoo's own layers and settings.
PT = SimpleNamespace(bn_eps=1e-5, bn_momentum=0.1, ln_eps=1e-5)  # PyTorch's values, as specs hold them


def _fw() -> tuple[Any, Any]:
    """torch and keras, imported with nnzoo's backend settings; torch seeded."""
    from nnzoo import backends

    backends.require("torch")
    backends.require("keras")
    import keras
    import torch

    torch.manual_seed(0)
    return torch, keras


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _randn(*shape: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _diff(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)))


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _nchw(y: Any) -> np.ndarray:
    return np.asarray(y).transpose(0, 3, 1, 2)


def _keras_fn(build: Callable[[Any], Any], shape: tuple[int, ...]) -> Any:
    """A functional Keras model from `build(input) -> output` (for nnzoo's graph helpers)."""
    import keras

    inp = keras.Input(shape=shape)
    return keras.Model(inp, build(inp))


def _torch_run(module: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        y = module(torch.from_numpy(x))
    return (y[0] if isinstance(y, tuple) else y).numpy()


def probe_bn_eps(settled: bool) -> float:
    torch, keras = _fw()
    from nnzoo.keras_impl.layers import norm as knorm
    from nnzoo.torch_impl.layers import norm as tnorm

    var = np.logspace(-4, 0, 8).astype(np.float32)
    mean = _randn(8, seed=1, scale=0.5)
    x = _randn(2, 8, 6, 6) * np.sqrt(var)[:, None, None] + mean[:, None, None]
    tb = tnorm(PT, "batch", 8, dims=2).eval()
    tb.running_mean.copy_(torch.from_numpy(mean))
    tb.running_var.copy_(torch.from_numpy(var))
    kb = knorm(PT, "batch", name="bn") if settled else keras.layers.BatchNormalization()
    kb.build((None, 6, 6, 8))
    kb.moving_mean.assign(mean)
    kb.moving_variance.assign(var)
    return _diff(_torch_run(tb, x), _nchw(kb(_nhwc(x), training=False)))


def _bn_step(keras_bn: Any, x: np.ndarray) -> float:
    """One training step of torch BatchNorm (PyTorch's values) and `keras_bn`; statistics diff."""
    torch, _ = _fw()
    from nnzoo.torch_impl.layers import norm as tnorm

    image = x.ndim == 4
    tb = tnorm(PT, "batch", x.shape[1], dims=2 if image else 1).train()
    with torch.no_grad():
        tb(torch.from_numpy(x))
    keras_bn.build(_nhwc(x).shape if image else x.shape)
    keras_bn(_nhwc(x) if image else x, training=True)
    return max(_diff(tb.running_mean.numpy(), keras_bn.moving_mean.numpy()),
               _diff(tb.running_var.numpy(), keras_bn.moving_variance.numpy()))


def probe_bn_momentum(settled: bool) -> float:
    _, keras = _fw()
    from nnzoo.keras_impl.layers import norm as knorm

    x = _randn(2, 8, 6, 6) + 1.5
    bn = knorm(PT, "batch", name="bn") if settled else keras.layers.BatchNormalization(epsilon=1e-5)
    return _bn_step(bn, x)


def probe_bn_variance(settled: bool) -> float:
    _, keras = _fw()
    from nnzoo.keras_impl.layers import norm as knorm

    x = _randn(2, 16, scale=1.5)
    bn = knorm(PT, "batch", name="bn") if settled else \
        keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)
    return _bn_step(bn, x)


def probe_conv_padding(settled: bool) -> float:
    torch, keras = _fw()
    from nnzoo.keras_impl.layers import conv2d

    x, w = _randn(1, 4, 32, 32), _randn(8, 4, 3, 3, seed=1, scale=(2 / 36) ** 0.5)
    tc = torch.nn.Conv2d(4, 8, 3, 2, 1, bias=False)
    tc.weight.data = torch.from_numpy(w)
    if settled:
        model = _keras_fn(lambda i: conv2d(i, 8, 3, stride=2, padding=1, bias=False, name="c"),
                          (32, 32, 4))
    else:
        model = _keras_fn(keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False,
                                              name="c"), (32, 32, 4))
    model.get_layer("c").kernel.assign(w.transpose(2, 3, 1, 0))
    return _diff(_torch_run(tc, x), _nchw(model(_nhwc(x))))


def _pool_probe(kind: str, settled: bool) -> float:
    torch, keras = _fw()
    from nnzoo.keras_impl.layers import pool2d
    from nnzoo.torch_impl.layers import pool2d as tpool

    x = _randn(1, 4, 32, 32)
    if settled:
        model = _keras_fn(lambda i: pool2d(i, kind, 3, 2, 1, name="p"), (32, 32, 4))
    else:
        cls = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
        model = _keras_fn(cls(3, strides=2, padding="same"), (32, 32, 4))
    return _diff(_torch_run(tpool(kind, 3, 2, 1), x), _nchw(model(_nhwc(x))))


def probe_pool_padding(settled: bool) -> float:
    return _pool_probe("max", settled)


def probe_avgpool_padding(settled: bool) -> float:
    return _pool_probe("avg", settled)


def _count(layer: Any) -> int:
    return sum(int(np.prod(w.shape)) for w in layer.weights)


def probe_lstm_biases(settled: bool) -> float:
    torch, keras = _fw()
    from nnzoo.keras_impl.recurrent import RecurrentLayer

    theirs = sum(t.numel() for t in torch.nn.LSTM(8, 16, batch_first=True).parameters())
    layer = RecurrentLayer("lstm", 16, 0, False) if settled else keras.layers.LSTM(16)
    layer.build((None, None, 8))
    return float(theirs - _count(layer))


def _gru_pair() -> tuple[Any, np.ndarray, np.ndarray]:
    """A seeded torch GRU(8 -> 16), an input of 6 steps, and its output."""
    torch, _ = _fw()
    gru = torch.nn.GRU(8, 16, batch_first=True)
    x = _randn(2, 6, 8)
    return gru, x, _torch_run(gru, x)


def _gru_nnzoo() -> float:
    """nnzoo's Keras GRU, weights moved through its own links: its distance to PyTorch's."""
    from nnzoo.keras_impl.recurrent import RecurrentLayer

    gru, x, y = _gru_pair()
    layer = RecurrentLayer("gru", 16, 0, False, name="gru")
    layer.build((None, None, 8))
    sd = {f"gru.{k}": v.detach().numpy() for k, v in gru.state_dict().items()}
    for link in layer.torch_links():
        for var, value in zip(link.variables, link.to_keras(sd[link.key])):
            var.assign(value)
    return _diff(y, layer(x)[0])


def _swap_rz(t: np.ndarray) -> np.ndarray:
    r, z, n = np.split(t, 3)
    return np.concatenate([z, r, n])


def probe_gru_reset_after(settled: bool) -> float:
    if settled:
        return _gru_nnzoo()
    _, keras = _fw()
    gru, x, y = _gru_pair()
    w = {k: v.detach().numpy() for k, v in gru.state_dict().items()}
    layer = keras.layers.GRU(16, reset_after=False, return_sequences=True)
    layer.build((None, None, 8))
    layer.set_weights([_swap_rz(w["weight_ih_l0"]).T, _swap_rz(w["weight_hh_l0"]).T,
                       _swap_rz(w["bias_ih_l0"] + w["bias_hh_l0"])])
    return _diff(y, layer(x))


def probe_gru_gate_order(settled: bool) -> float:
    if settled:
        return _gru_nnzoo()
    _, keras = _fw()
    gru, x, y = _gru_pair()
    w = {k: v.detach().numpy() for k, v in gru.state_dict().items()}
    layer = keras.layers.GRU(16, return_sequences=True)
    layer.build((None, None, 8))
    layer.set_weights([w["weight_ih_l0"].T, w["weight_hh_l0"].T,
                       np.stack([w["bias_ih_l0"], w["bias_hh_l0"]])])
    return _diff(y, layer(x))


def probe_attention_layout(settled: bool) -> float:
    torch, _ = _fw()
    from nnzoo.keras_impl.attention import SelfAttention

    mha = torch.nn.MultiheadAttention(16, 2, batch_first=settled)
    x = _randn(3, 5, 16)
    x2 = x.copy()
    x2[1] += 1.0  # change example 1 only

    def run(v: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            t = torch.from_numpy(v)
            return mha(t, t, t, need_weights=False)[0].numpy()

    mixing = _diff(run(x)[0], run(x2)[0])
    if not settled:
        return mixing
    layer = SelfAttention(16, 2, name="attn")
    layer(x, x)
    sd = {f"attn.{k}": v.detach().numpy() for k, v in mha.state_dict().items()}
    for link in layer.torch_links():
        for var, value in zip(link.variables, link.to_keras(sd[link.key])):
            var.assign(value)
    return max(mixing, _diff(run(x), layer(x, x)))


def probe_ln_eps(settled: bool) -> float:
    torch, keras = _fw()
    from nnzoo.keras_impl.layers import norm as knorm

    x = _randn(2, 8, 64)
    kl = knorm(PT, "layer", name="ln") if settled else keras.layers.LayerNormalization()
    return _diff(_torch_run(torch.nn.LayerNorm(64, eps=PT.ln_eps), x), kl(x))


def probe_gelu(settled: bool) -> float:
    torch, _ = _fw()
    from nnzoo.keras_impl.layers import activation

    x = np.linspace(-6, 6, 1201, dtype=np.float32)[None]
    return _diff(_torch_run(torch.nn.GELU(), x), activation("gelu" if settled else "gelu_tanh",
                                                            name="act")(x))


def probe_kernel_layout(settled: bool) -> float:
    torch, keras = _fw()
    from nnzoo.convert import _conv

    x, w = _randn(1, 4, 8, 8), _randn(8, 4, 3, 3, seed=1, scale=(2 / 36) ** 0.5)
    tc = torch.nn.Conv2d(4, 8, 3, 1, 1, bias=False)
    tc.weight.data = torch.from_numpy(w)
    kc = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="c")
    kc.build((None, 8, 8, 4))
    (link,) = _conv(kc)
    kc.kernel.assign(link.to_keras(w)[0] if settled else w.reshape(3, 3, 4, 8))
    return _diff(_torch_run(tc, x), _nchw(kc(_nhwc(x))))


def probe_data_layout(settled: bool) -> float:
    torch, keras = _fw()
    from nnzoo.layout import from_keras, to_keras

    x, w = _randn(1, 8, 8, 8), _randn(4, 8, 3, 3, seed=1, scale=(2 / 72) ** 0.5)
    tc = torch.nn.Conv2d(8, 4, 3, 1, 1, bias=False)
    tc.weight.data = torch.from_numpy(w)
    kc = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)
    kc.build((None, 8, 8, 8))
    kc.kernel.assign(w.transpose(2, 3, 1, 0))
    fed = to_keras(x, "image") if settled else x
    return _diff(_torch_run(tc, x), from_keras(np.asarray(kc(fed)), "image"))


def probe_flatten_order(settled: bool) -> float:
    torch, keras = _fw()
    x, w = _randn(2, 4, 3, 3), _randn(5, 36, seed=1, scale=36 ** -0.5)
    fc = torch.nn.Linear(36, 5, bias=False)
    fc.weight.data = torch.from_numpy(w)
    y = _torch_run(torch.nn.Sequential(torch.nn.Flatten(), fc), x)
    steps = ([keras.layers.Permute((3, 1, 2))] if settled else []) + [
        keras.layers.Flatten(), keras.layers.Dense(5, use_bias=False, name="fc")]
    model = keras.Sequential([keras.Input((3, 3, 4)), *steps])
    model.get_layer("fc").kernel.assign(w.T)
    return _diff(y, model(_nhwc(x)))


def probe_upsample_bilinear(settled: bool) -> float:
    torch, keras = _fw()
    x = _randn(1, 4, 8, 8)
    up = torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=not settled)
    return _diff(_torch_run(up, x), _nchw(keras.layers.UpSampling2D(2, interpolation="bilinear")(
        _nhwc(x))))


def probe_default_init(settled: bool) -> float:
    from nnzoo import backends
    from nnzoo.convert import transfer_weights
    from nnzoo.parity import run
    from nnzoo.specs.mlp import MLPSpec

    spec = MLPSpec(input_size=8, hidden_sizes=(16,), num_classes=4)
    t = backends.build_native(spec, "torch", seed=0)
    k = backends.build_native(spec, "keras", seed=0)
    if settled:
        transfer_weights(t, k)
    x = spec.example_input(2, seed=0)
    return _diff(run(t, x), run(k, x))


REGISTRY: tuple[Difference, ...] = (
    Difference(
        "bn_eps", "Batch-norm epsilon", "eps=1e-5", "epsilon=1e-3",
        "Epsilon is added to the variance before the square root. Channels whose running variance "
        "is small (common in trained networks) are scaled very differently.",
        "Keras receives epsilon=bn_eps", ("bn_eps",), lambda c: c.has(*BN), probe_bn_eps,
        "max |output difference| in inference, 8 channels with running variances 1e-4..1"),
    Difference(
        "bn_momentum", "Batch-norm momentum", "momentum=0.1: the weight of the NEW batch",
        "momentum=0.99: the weight of the OLD value",
        "The two conventions are opposite: PyTorch's m is Keras's 1 - m. Passing 0.1 as it is "
        "makes Keras forget its statistics almost at once; leaving Keras's 0.99 makes it 10x slower.",
        "specs hold bn_momentum in PyTorch's convention; Keras receives 1 - bn_momentum",
        ("bn_momentum",), lambda c: c.has(*BN), probe_bn_momentum,
        "max |running statistics difference| after one training step"),
    Difference(
        "bn_variance", "Batch-norm running variance: unbiased or biased",
        "updates running_var with the unbiased batch variance (x n/(n-1))",
        "updates moving_variance with the biased batch variance",
        "Both normalise a training batch with the biased variance, but the running statistic "
        "they keep for inference differs by n/(n-1): a factor 2 for a batch of two vectors.",
        "nnzoo's Keras BatchNorm layer (keras_impl/layers.py) updates with the unbiased variance",
        (), lambda c: c.has(*BN), probe_bn_variance,
        "max |running variance difference| after one step on a batch of 2 vectors"),
    Difference(
        "conv_padding", "Stride-2 convolution padding", "padding=1: one pixel on every side",
        "padding='same': asymmetric, the extra pixel at the bottom/right",
        "With stride > 1, 'same' pads only what the stride needs, bottom/right first; the output "
        "has the right shape but every value is shifted by one pixel.",
        "explicit symmetric ZeroPadding2D + 'valid' convolution (keras_impl/layers.py conv2d)",
        ("padding", "stages"), lambda c: c.has("Conv2d", where=_strided), probe_conv_padding,
        "max |output difference|, 3x3 stride-2 convolution on a 32x32 input"),
    Difference(
        "pool_padding", "Max-pool 3x3 / stride 2 / padding 1", "pads symmetrically with -inf",
        "padding='same': asymmetric",
        "The same shift as for convolutions, in ResNet's stem max-pool.",
        "explicit symmetric -inf padding + 'valid' pooling (keras_impl/layers.py pool2d)",
        ("stages",), lambda c: c.has("MaxPool2d", where=_strided), probe_pool_padding,
        "max |output difference| on a 32x32 input"),
    Difference(
        "avgpool_padding", "Average-pool padding", "counts padded zeros (count_include_pad=True)",
        "padding='same': asymmetric, and padded cells are not counted",
        "Border outputs are averages over different cells and different divisors.",
        "explicit symmetric zero padding + 'valid' pooling (keras_impl/layers.py pool2d)",
        ("stages",), lambda c: c.has("AvgPool2d", where=_strided), probe_avgpool_padding,
        "max |output difference|, 3x3 / stride 2 / padding 1 on a 32x32 input"),
    Difference(
        "lstm_biases", "LSTM biases", "two per gate: b_ih and b_hh (8 x hidden per layer and "
        "direction)", "one per gate (4 x hidden)",
        "Only their sum enters the maths, but parameter counts differ by 4 x hidden per layer and "
        "direction, and a PyTorch checkpoint has nowhere to go.",
        "nnzoo's Keras LSTM cell holds both biases and hands Keras their sum",
        (), lambda c: c.has("LSTM"), probe_lstm_biases,
        "parameter count difference of one layer, hidden 16", unit="parameters",
        in_model=lambda c: f"{_lstm_biases(c):,} parameters (4 x hidden per layer and direction)"),
    Difference(
        "gru_reset_after", "GRU reset gate: before or after the recurrent product",
        "n = tanh(W x + b_in + r * (U h + b_hn))", "reset_after=True (Keras 3 default) is the "
        "same; reset_after=False (Keras 2 / TF1 ports) applies r before U",
        "With reset_after=False the candidate state is a different function (and there is one "
        "bias instead of two).", "nnzoo's Keras GRU always uses reset_after=True",
        (), lambda c: c.has("GRU"), probe_gru_reset_after,
        "max |output difference| over 6 steps with reset_after=False", defaults_agree=True),
    Difference(
        "gru_gate_order", "GRU gate order", "r, z, n (reset, update, new)",
        "z, r, h (update, reset, candidate)",
        "Copying the stacked gate matrices without swapping the first two blocks swaps the reset "
        "and update gates. (LSTM's i, f, g, o order is the same in both.)",
        "nnzoo's weight transfer swaps the blocks (keras_impl/recurrent.py)",
        (), lambda c: c.has("GRU"), probe_gru_gate_order,
        "max |output difference| over 6 steps, gates copied unswapped"),
    Difference(
        "attention_layout", "MultiheadAttention batch axis", "batch_first=False: (time, batch, "
        "width) unless told otherwise; q, k, v packed into in_proj_weight",
        "batch-first; separate query/key/value kernels (width, heads, head_dim)",
        "A sequence-first attention fed (batch, time, width) attends across the batch: each "
        "example's output depends on the others, silently.",
        "batch_first=True in every nnzoo attention; weight transfer splits/joins in_proj",
        (), lambda c: c.has("MultiheadAttention"), probe_attention_layout,
        "max change of example 0's output when only example 1 changes"),
    Difference(
        "ln_eps", "Layer-norm epsilon", "eps=1e-5", "epsilon=1e-3",
        "A small but systematic drift, largest for features of small variance.",
        "Keras receives epsilon=ln_eps", ("ln_eps",), lambda c: c.has("LayerNorm"), probe_ln_eps,
        "max |output difference| on unit-variance features"),
    Difference(
        "gelu", "GELU: exact or tanh approximation", "GELU(): exact (approximate='none')",
        "gelu: exact (approximate=False)",
        "The defaults agree; models trained with the tanh approximation (GPT-2, BERT's TF code) "
        "must say so, or every activation is slightly off.",
        "activation='gelu' (exact) or 'gelu_tanh', passed explicitly to both",
        ("activation",), lambda c: c.has("GELU"), probe_gelu,
        "max |gelu - gelu_tanh| on [-6, 6]", defaults_agree=True),
    Difference(
        "kernel_layout", "Weight layouts", "dense (out, in); conv (out, in, kh, kw)",
        "dense (in, out); conv (kh, kw, in, out)",
        "A reshape instead of a transpose fits the shapes and scrambles the weights.",
        "one transfer rule per layer type (nnzoo/convert.py)",
        (), lambda c: c.has(*WEIGHTED), probe_kernel_layout,
        "max |output difference|, 3x3 conv kernel reshaped instead of transposed"),
    Difference(
        "data_layout", "Image layout", "NCHW", "NHWC",
        "Each backend keeps its fast native layout; a tensor fed in the other one is read as "
        "nonsense (or refused, when the sizes differ).",
        "nnzoo.layout maps canonical NCHW to Keras NHWC and back",
        (), lambda c: c.spec.input_kind == "image", probe_data_layout,
        "max |output difference|, an NCHW 8x8x8 tensor fed to NHWC"),
    Difference(
        "flatten_order", "Flatten order before a dense layer", "flattens (C, H, W)",
        "flattens (H, W, C)",
        "The next dense layer's inputs arrive in another order, so transferred weights meet the "
        "wrong features.", "the Keras CNN permutes to (C, H, W) before Flatten (keras_impl/cnn.py)",
        ("global_pool",), _flattens_image, probe_flatten_order,
        "max |output difference|, dense layer on a flattened 4x3x3 feature map"),
    Difference(
        "upsample_bilinear", "Bilinear up-sampling grid", "align_corners=False (half-pixel)",
        "UpSampling2D bilinear: half-pixel",
        "The defaults agree; align_corners=True (common in older PyTorch code) does not.",
        "align_corners=False in PyTorch, UpSampling2D bilinear in Keras",
        ("upsample",), lambda c: c.has("Upsample", where=lambda m: "linear" in m.mode),
        probe_upsample_bilinear, "max |output difference| x2 on 8x8 with align_corners=True",
        defaults_agree=True),
    Difference(
        "default_init", "Default initialisation", "kaiming_uniform(a=sqrt 5): weights and biases "
        "U(+-1/sqrt(fan_in))", "glorot_uniform weights, zero biases",
        "The twins start from different weights (Keras's std is ~1.7x PyTorch's for a square "
        "dense layer): the same network, a different starting point.",
        "weights are transferred, not re-drawn (nnzoo.transfer_weights)",
        (), lambda c: True, probe_default_init,
        "max |output difference| of fresh twins (seed 0), 8-16-4 MLP"),
)

BY_ID = {d.id: d for d in REGISTRY}
assert len(BY_ID) == len(REGISTRY), "difference ids must be unique"


@functools.cache
def _measured(id_: str, settled: bool) -> float:
    import torch

    with torch.random.fork_rng(devices=[]):  # probes seed torch; the caller's state is kept
        return float(BY_ID[id_].probe(settled))


def applicable(trace: Any) -> list[Difference]:
    """The differences a traced PyTorch build (see `nnzoo.flops.trace`) touches."""
    ctx = Context.of(trace)
    return [d for d in REGISTRY if d.applies(ctx)]


# ---- the generated document ------------------------------------------------------------------
def render_markdown() -> str:
    lines = [
        "# Framework differences: PyTorch and Keras 3",
        "",
        "Generated by `python -m nnzoo.differences --write docs/framework-differences.md` from "
        "the registry in `nnzoo/differences.py`; `tests/test_differences.py` keeps it in sync.",
        "Every number is measured by nnzoo: a seeded pair of real PyTorch and Keras layers, left "
        "to the frameworks' defaults (or, where the defaults agree, to the common mistake), "
        "rounded to 2 significant digits. With nnzoo's explicit settings each probe agrees "
        "within 1e-5. `nnzoo explain NAME` lists the ones a model touches.",
        "",
        "| difference | PyTorch | Keras | effect if ignored | settled by |",
        "|---|---|---|---|---|",
    ]
    for d in REGISTRY:
        lines.append(f"| [{d.title}](#{d.id}) | {d.pytorch} | {d.keras} | "
                     f"{d.effect_text()}{' ' + d.unit if d.unit else ''} | {_fields(d)} |")
    for d in REGISTRY:
        lines += ["", f"## <a id=\"{d.id}\"></a>{d.title}", "",
                  f"- PyTorch: {d.pytorch}", f"- Keras: {d.keras}", f"- Why it matters: "
                  f"{d.explanation}", f"- Settled by: {d.settled_by}"
                  + (f" (spec field{'s' if len(d.fields) > 1 else ''} "
                     f"{', '.join(f'`{f}`' for f in d.fields)})" if d.fields else ""),
                  f"- Measured{' (the defaults agree; the common mistake)' if d.defaults_agree else ''}"
                  f": {d.metric} = **{d.effect_text()}**{' ' + d.unit if d.unit else ''}; "
                  "with nnzoo's settings <= 1e-5"]
    return "\n".join(lines) + "\n"


def _fields(d: Difference) -> str:
    return ", ".join(f"`{f}`" for f in d.fields) if d.fields else d.settled_by.split(" (")[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnzoo.differences", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", help="write the markdown document")
    group.add_argument("--check", metavar="PATH", help="exit 1 if PATH differs from the registry")
    args = parser.parse_args(argv)
    text = render_markdown()
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.write}")
    elif args.check:
        with open(args.check, encoding="utf-8") as f:
            same = f.read() == text
        print(f"{args.check} is {'up to date' if same else 'STALE: regenerate with --write'}")
        return 0 if same else 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
