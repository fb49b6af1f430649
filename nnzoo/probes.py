"""The probes behind `nnzoo.differences`: each a seeded PyTorch layer and its Keras twin on the
same data, returning an effect size.

`probe(settled=False)` leaves the choice to the frameworks' defaults (or makes the common
mistake); `probe(settled=True)` uses nnzoo's own layers and settings, and must come out <= 1e-5.
Frameworks are imported inside the probes, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from nnzoo.runtime import to_numpy

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
    a, b = to_numpy(a).astype(np.float64), to_numpy(b).astype(np.float64)
    return float(np.max(np.abs(a - b)))


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _nchw(y: Any) -> np.ndarray:
    return to_numpy(y).transpose(0, 3, 1, 2)


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
    return max(_diff(tb.running_mean, keras_bn.moving_mean),
               _diff(tb.running_var, keras_bn.moving_variance))


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
        model = _keras_fn(lambda i: pool2d(i, kind, 3, 2, padding=1, name="p"), (32, 32, 4))
    else:
        cls = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
        model = _keras_fn(cls(3, strides=2, padding="same"), (32, 32, 4))
    return _diff(_torch_run(tpool(kind, 3, 2, padding=1), x), _nchw(model(_nhwc(x))))


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


def probe_hard_sigmoid(settled: bool) -> float:
    """nnzoo's Keras hard sigmoid against PyTorch's; unsettled, the clip(0.2 x + 0.5) of Keras 2
    and tf.keras (TensorFlow <= 2.15) that old ports carry."""
    torch, _ = _fw()
    from nnzoo.keras_impl.layers import activation

    x = np.linspace(-6, 6, 1201, dtype=np.float32)[None]
    theirs = activation("hardsigmoid", name="act")(x) if settled else np.clip(0.2 * x + 0.5, 0, 1)
    return _diff(_torch_run(torch.nn.Hardsigmoid(), x), theirs)


def probe_stochastic_depth(settled: bool) -> float:
    """The share of examples whose residual branch is dropped in part, not whole: 0 in PyTorch
    (torchvision's row mode); unsettled, Keras's plain `Dropout(rate)` drops element-wise."""
    _, keras = _fw()
    from nnzoo.keras_impl.convnext import stochastic_depth

    x = np.ones((4000, 2, 2, 4), dtype=np.float32)
    layer = stochastic_depth(0.2, name="sd") if settled else keras.layers.Dropout(0.2, seed=0)
    rows = to_numpy(layer(x, training=True)).reshape(len(x), -1)
    return float(np.mean(np.any(rows == 0, axis=1) & np.any(rows != 0, axis=1)))


def probe_kernel_layout(settled: bool) -> float:
    torch, keras = _fw()
    from nnzoo.links import _conv

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
    return _diff(_torch_run(tc, x), from_keras(to_numpy(kc(fed)), "image"))


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


def probe_column_order(settled: bool) -> float:
    """A CRNN's columns as steps: PyTorch's (C, H) column features against NHWC's (H, C)."""
    torch, keras = _fw()
    x, w = _randn(2, 4, 3, 5), _randn(6, 12, seed=1, scale=12 ** -0.5)
    fc = torch.nn.Linear(12, 6, bias=False)
    fc.weight.data = torch.from_numpy(w)
    with torch.no_grad():
        y = fc(torch.from_numpy(x).permute(0, 3, 1, 2).reshape(2, 5, 12)).numpy()
    model = keras.Sequential([keras.Input((3, 5, 4)),
                              keras.layers.Permute((2, 3, 1) if settled else (2, 1, 3)),
                              keras.layers.Reshape((5, 12)),
                              keras.layers.Dense(6, use_bias=False, name="fc")])
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
    from nnzoo.conversion import transfer_weights
    from nnzoo.runtime import run
    from nnzoo.specs.mlp import MLPSpec

    spec = MLPSpec(input_size=8, hidden_sizes=(16,), num_classes=4)
    t = backends.build_native(spec, "torch", seed=0)
    k = backends.build_native(spec, "keras", seed=0)
    if settled:
        transfer_weights(t, k)
    x = spec.example_input(2, seed=0)
    return _diff(run(t, x), run(k, x))


# ---- training: optimizers and losses ------------------------------------------------------------
def _train_pair(keras_optimizer: Any, opt: dict[str, Any], steps: int = 20) -> float:
    """`steps` float64 updates of an 8-16-4 MLP (cross-entropy, batches of 8) in both frameworks
    from the same weights: PyTorch's optimizer built by nnzoo from `opt`, Keras's given (None:
    nnzoo's twin of `opt`). The largest weight difference, relative to the largest weight change."""
    from nnzoo import backends
    from nnzoo.conversion import state_dict, transfer_weights
    from nnzoo.keras_impl.training import Trainer as KerasTrainer
    from nnzoo.specs.mlp import MLPSpec
    from nnzoo.specs.training import LossSpec, optimizer_spec, synthetic_batch
    from nnzoo.torch_impl.training import Trainer as TorchTrainer

    _fw()
    spec, loss = MLPSpec(input_size=8, hidden_sizes=(16,), num_classes=4), LossSpec()
    x, y = synthetic_batch(spec, loss, 8 * steps, seed=0)
    with backends.float64_scope():
        t = backends.build_native(spec, "torch", seed=0, dtype="float64")
        k = backends.build_native(spec, "keras", seed=0, dtype="float64")
        transfer_weights(t, k)
        start = state_dict(t)
        torch_trainer = TorchTrainer(t, optimizer_spec(opt), loss, steps=steps)
        keras_trainer = KerasTrainer(k, optimizer_spec(opt), loss, steps=steps)
        keras_trainer.optimizer = keras_optimizer or keras_trainer.optimizer
        for i in range(steps):
            batch = slice(8 * i, 8 * i + 8)
            torch_trainer.step(x[batch].astype(np.float64), y[batch])
            keras_trainer.step(x[batch].astype(np.float64), y[batch])
        a, b = state_dict(t), state_dict(k)
    moved = max(_diff(a[key], start[key]) for key in a)
    return max(_diff(a[key], b[key]) for key in a) / moved


def probe_adam_epsilon(settled: bool) -> float:
    _, keras = _fw()
    return _train_pair(None if settled else keras.optimizers.Adam(learning_rate=1e-3),
                       {"kind": "adam", "lr": 1e-3})


def probe_adamw_decay(settled: bool) -> float:
    _, keras = _fw()
    return _train_pair(None if settled else keras.optimizers.AdamW(learning_rate=1e-3),
                       {"kind": "adamw", "lr": 1e-3, "weight_decay": 1e-2})


def probe_sgd_weight_decay(settled: bool) -> float:
    _, keras = _fw()
    stock = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-4)
    return _train_pair(None if settled else stock,
                       {"kind": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4})


def probe_sgd_momentum_schedule(settled: bool) -> float:
    _, keras = _fw()
    rate = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.1, staircase=True)
    return _train_pair(None if settled else keras.optimizers.SGD(rate, momentum=0.9),
                       {"kind": "sgd", "lr": 0.1, "momentum": 0.9,
                        "schedule": {"kind": "step", "step_size": 10, "gamma": 0.1}})


def probe_grad_clipping(settled: bool) -> float:
    _, keras = _fw()
    return _train_pair(None if settled else keras.optimizers.SGD(0.1, clipnorm=0.1),
                       {"kind": "sgd", "lr": 0.1, "clip_norm": 0.1})


def probe_ce_logits(settled: bool) -> float:
    torch, keras = _fw()
    from nnzoo.keras_impl.training import build_loss
    from nnzoo.specs.training import LossSpec

    # positive scores: Keras's backends read negative "probabilities" differently (clipping)
    logits, labels = np.abs(_randn(8, 4, scale=2.0)), _rng(1).integers(0, 4, 8)
    ours = torch.nn.CrossEntropyLoss()(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    theirs = build_loss(LossSpec()) if settled else keras.losses.SparseCategoricalCrossentropy()
    return abs(ours - float(np.asarray(keras.ops.convert_to_numpy(theirs(labels, logits)))))


def probe_mse_sum(settled: bool) -> float:
    torch, keras = _fw()
    pred, target = _randn(8, 4), _randn(8, 4, seed=1)
    reduction = "mean" if settled else "sum"
    ours = torch.nn.MSELoss(reduction=reduction)(torch.from_numpy(pred), torch.from_numpy(target))
    theirs = keras.losses.MeanSquaredError(reduction="sum_over_batch_size" if settled else "sum")
    value = float(np.asarray(keras.ops.convert_to_numpy(theirs(target, pred))))
    return abs(ours.item() - value) / abs(ours.item())


# ---- data-parallel training ---------------------------------------------------------------------
_DATA_PARALLEL: dict[bool, float] = {}


def probe_data_parallel_bn(settled: bool) -> float:
    """A small ResNet (two basic blocks, 16x16 inputs), 3 float64 SGD-momentum steps on global
    batches of 4: `DistributedDataParallel` in 2 gloo processes against one process, the largest
    difference over every weight and running statistic. settled: nnzoo's synchronized batch norm;
    not: per-process statistics, DDP's default. One launch measures both (then kept)."""
    if not _DATA_PARALLEL:
        import nnzoo
        from nnzoo.distributed import data_parallel_parity

        spec = nnzoo.get_spec("resnet18_cifar").replace(
            layers=(1, 1), widths=(8, 16), stem_width=8, image_size=(16, 16))
        report = data_parallel_parity([spec], sync_bn=(True, False))
        _DATA_PARALLEL.update({c.sync_bn: c.weight_diff for c in report.cases})
    return _DATA_PARALLEL[settled]
