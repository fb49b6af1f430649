"""Training parity on the active Keras backend: the same gradients for every registered model,
the same optimizer steps and loss curve for every family with SGD-momentum and with AdamW,
stochastic layers the same in distribution, and PyTorch's optimizer maths where Keras's own
differs.

Gradient parity runs on `quick()` specs, batch 2, for the whole registry on every Keras backend
(heavy models, `conftest.heavy`, under `slow`, and ViT-L/H also `alone`, as in test_parity;
`make test` runs those on every backend, of ViT-L/H only ViT-L's, for the test budget).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import nnzoo
from conftest import (
    ALONE,
    TINY,
    heavy,
    meta_count,
    smallest_per_family,
)
from nnzoo import backends
from nnzoo.errors import SpecError
from nnzoo.parity import ATOL
from nnzoo.specs.base import Spec
from nnzoo.specs.training import LossSpec, optimizer_spec
from nnzoo.training import gradient_parity, train_parity

pytestmark = pytest.mark.keras

#: The JAX and PyTorch Keras passes leave the float32 report, the optimizer-settings matrix's
#: TensorFlow-only half and the digits example to the TensorFlow pass (test budget); gradient
#: parity (see `_registry`) and the step-by-step checks run on every backend.
ON_TF = os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"
TF_ONLY = pytest.mark.skipif(not ON_TF, reason="the TensorFlow pass runs it (JAX/PyTorch test budget)")


def _registry() -> list:
    """The whole registry, heavy models (`conftest.heavy`) under `slow` and the largest also
    `alone`, which `make test` runs in passes of their own, as in test_parity. A check holds
    about two float64 copies of one build's weights at a time (`gradient_parity`): measured
    5.5 GB for ViT-L/16 and 11.7 GB for ViT-H/14 on TensorFlow. Of the `alone` ones `make test`
    runs ViT-L/16's and ViT-L/32's on every backend (the Makefile's ALONE_EVERY_BACKEND), not
    ViT-H/14's (the test budget): `make test-largest` does (ALONE_LEFT_OUT)."""
    params = []
    for name in nnzoo.list_models():
        if meta_count(name) > ALONE:
            params.append(pytest.param(name, marks=[pytest.mark.slow, pytest.mark.alone]))
        else:
            params.append(pytest.param(name, marks=pytest.mark.slow) if heavy(name) else name)
    return params


def _make(*args: str) -> str:
    """What make prints for `args` in the repository, as if called from a shell (the parent
    make's flags removed: under `make test` they would carry `--jobs` and `-n` into it)."""
    import subprocess
    from pathlib import Path

    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=Path(__file__).resolve().parents[1],
        capture_output=True, text=True, check=True,
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")},
    ).stdout


@TF_ONLY
def test_make_test_and_make_test_largest_split_the_alone_gradient_checks() -> None:
    """The Makefile's `-k` selections, read from make and matched as pytest matches them: each
    `alone` gradient check is in exactly one of ALONE_EVERY_BACKEND (`make test`) and
    ALONE_LEFT_OUT (`make test-largest`), the latter is ViT-H/14's alone, and it takes no other
    `alone` test (the numeric checks of ViT-L/H stay in `make test`'s TensorFlow pass). What the
    two targets run (`make -n`): `make test`'s lanes without NumPy's huge pages, `make
    test-largest` the checks on all three backends, NumPy's huge pages on TensorFlow and JAX
    and glibc keeping its heap on PyTorch (the Makefile's LANE_PAGES, LARGEST_PAGES and
    LARGEST_HEAP: on TensorFlow the kept heap was faster but peaked at up to 15.7 GB)."""
    from _pytest.mark import KeywordMatcher
    from _pytest.mark.expression import Expression

    printed = _make("-s", "--eval", "print-%: ; @:$(info $($*))",
                    "print-ALONE_EVERY_BACKEND", "print-ALONE_LEFT_OUT")
    every_text, left_out_text = printed.splitlines()
    every, left_out = Expression.compile(every_text), Expression.compile(left_out_text)

    def selects(expression: Expression, test_id: str) -> bool:
        """`-k`'s match on an `alone` test: its node names and its markers' (`KeywordMatcher`)."""
        names = {*test_id.split("::"), "tests", "slow", "alone", "keras", "parametrize"}
        return expression.evaluate(KeywordMatcher(frozenset(names)))

    def gradients(name: str) -> str:
        return f"test_training.py::test_gradient_parity[{name}]"

    alone = [p.values[0] for p in _registry()
             if not isinstance(p, str) and any(m.name == "alone" for m in p.marks)]
    assert set(alone) == {"vit_l_16", "vit_l_32", "vit_h_14"}, alone
    for name in alone:
        assert selects(every, gradients(name)) != selects(left_out, gradients(name)), name
        assert not selects(left_out, f"test_parity.py::test_numeric_parity[float64-{name}]")
    assert [name for name in alone if selects(left_out, gradients(name))] == ["vit_h_14"]

    test = _make("-n", "test").replace("\\\n", " ").splitlines()
    lanes = [c for c in test if "test-lane-1 test-lane-2" in c]
    assert len(lanes) == 1 and "NUMPY_MADVISE_HUGEPAGE=0" in lanes[0], lanes
    assert not [c for c in test if left_out_text in c]
    largest = _make("-n", "test-largest").replace("\\\n", " ").splitlines()
    largest = [c for c in largest if f'-k "{left_out_text}"' in c]
    assert [c.split("KERAS_BACKEND=")[1].split()[0] for c in largest] == [
        "tensorflow", "jax", "torch"], largest
    heap, pages = "MALLOC_MMAP_MAX_=0", "NUMPY_MADVISE_HUGEPAGE=1"
    assert all("-m alone" in c for c in largest), largest
    assert [(heap in c, pages in c) for c in largest] == [(False, True), (False, True),
                                                          (True, False)], largest


@pytest.mark.parametrize("name", _registry())
def test_gradient_parity(name: str) -> None:
    """PyTorch weights into Keras and Keras weights into PyTorch: the gradients of the head's
    loss, mapped to PyTorch keys and layouts through the links, agree within the parity bound."""
    report = gradient_parity(nnzoo.get_spec(name).quick(), batch=2)
    print(report)  # the measured differences, with `pytest -s`
    assert report.ok, str(report)
    assert [a.direction for a in report.agreement] == ["torch->keras", "keras->torch"]
    for a in report.agreement:
        assert a.bound == ATOL * max(1.0, a.scale) and a.scale > 0


@TF_ONLY
def test_float32_gradients_are_reported_beside() -> None:
    """float32: the frameworks round differently, within 10x the network's own rounding."""
    report = gradient_parity("cnn_small_gap", dtype="float32", image_size=20)
    print(report)
    assert report.ok, str(report)
    assert all(0 < a.max_abs and a.noise > 0 for a in report.agreement)
    exact = gradient_parity("cnn_small_gap", image_size=20)
    assert max(a.max_abs for a in exact.agreement) < min(a.max_abs for a in report.agreement)


@TF_ONLY
@pytest.mark.parametrize("keep", [True, False])
def test_gradient_check_builds_pytorch_again_only_past_the_size(keep: bool,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               ) -> None:
    """Small weights: PyTorch's first build serves its own half (one build); past
    `KEEP_FIRST_BUILD`, a second build from the seed. Both give the same verdict."""
    import nnzoo.training

    monkeypatch.setattr(nnzoo.training, "KEEP_FIRST_BUILD", 2**28 if keep else 0)
    built = []
    real = backends.build_native
    monkeypatch.setattr(backends, "build_native",
                        lambda spec, backend, **kw: built.append(backend) or real(spec, backend, **kw))
    report = gradient_parity("cnn_small", image_size=16)
    assert report.ok, str(report)
    assert built.count("torch") == (1 if keep else 2) and built.count("keras") == 1


@pytest.mark.parametrize("name, above, eager", [("vit_ti_16", 0, True), ("vit_ti_16", None, False),
                                                ("cnn_separable", 0, False)])
def test_jax_takes_the_largest_gradients_eagerly(name: str, above: int | None, eager: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Keras/JAX: past `EAGER_GRADIENTS_ABOVE` (ViT-L, ViT-H) a model's gradients run op by op,
    not as one compiled program; below it, or with grouped convolutions (which only `xla_jit`
    keeps from being expanded into dense ones), compiled. Either way the same verdict."""
    if backends.keras_backend() != "jax":
        pytest.skip("how Keras/JAX computes gradients")
    import nnzoo.keras_impl.training as keras_training

    if above is not None:
        monkeypatch.setattr(keras_training, "EAGER_GRADIENTS_ABOVE", above)
    compiled = []
    real = keras_training.xla_jit
    monkeypatch.setattr(keras_training, "xla_jit", lambda fn: compiled.append(fn) or real(fn))
    report = gradient_parity(name, image_size=32 if name == "vit_ti_16" else 16)
    assert report.ok, str(report)
    assert len(compiled) == (0 if eager else 1)


#: Candidate overrides that make a family's smallest model tiny: from each group, the first one
#: the family has and accepts is kept (fields a family lacks are skipped, like invalid values).
SHRINK = (
    [{"layers": (1, 1), "widths": (8, 16), "stem_width": 8}, {"layers": (1, 1), "widths": (8, 16)}],
    [{"depth": 2}],
    [{"embed_dim": 32, "mlp_dim": 64, "num_heads": 2}, {"embed_dim": 16}],
    [{"hidden_size": 16}],
    [{"hidden_sizes": (16,)}],
    [{"base_width": 4}],
    [{"patch_size": 4}],
    [{"seq_len": 8}],
    [{"vocab_size": 64}],
    [{"image_size": (8, 8)}, {"image_size": (16, 16)}, {"image_size": (20, 20)}],
    # MobileNet's and EfficientNet's own rows: at 8x8, whole-size tables leave most blocks a 1x1
    # map, where batch norm over 4 values makes training chaotic (1e-13 apart after one float64
    # step, 1e-2 after five); conftest's TINY rows keep every map at 2x2 or larger.
    [{k: v for k, v in TINY["mobilenet"].items() if k != "image_size"}],
    [{k: v for k, v in TINY["efficientnet"].items() if k != "image_size"}],
)


def tiny(name: str) -> Spec:
    spec = nnzoo.get_spec(name)
    for group in SHRINK:
        for overrides in group:
            try:
                spec = spec.replace(**overrides)
                break
            except SpecError:  # UnknownFieldError included
                continue
    return spec


def test_gradients_set_aside_on_disk_give_the_same_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path the largest models take (Keras's gradients and initial weights on disk, read
    back key by key) gives exactly what the in-memory path gives."""
    import nnzoo.offload

    spec = tiny("resnet18")  # batch norm: its statistics are part of what is set aside
    in_memory = gradient_parity(spec)
    monkeypatch.setattr(nnzoo.offload, "DISK_ABOVE", 0)
    shelved, put = [], nnzoo.offload.Shelf.put

    def spy(self: nnzoo.offload.Shelf, items: Any) -> Any:
        shelved.append(self.on_disk)
        return put(self, items)

    monkeypatch.setattr(nnzoo.offload.Shelf, "put", spy)
    on_disk = gradient_parity(spec)
    assert shelved == [True, True, True]  # Keras's own weights, its gradients both ways
    assert in_memory.ok and on_disk.ok, (str(in_memory), str(on_disk))
    assert on_disk.agreement == in_memory.agreement and on_disk.losses == in_memory.losses


FAMILY_MODELS = smallest_per_family()


STEP_CASES = [(name, opt) for name in FAMILY_MODELS for opt in ("sgd", "adamw")]


@pytest.mark.parametrize(("name", "optimizer"), STEP_CASES)
def test_training_agrees_step_by_step(name: str, optimizer: str) -> None:
    """20 float64 steps of SGD with momentum and of AdamW: after every step the losses and every
    weight (batch-norm statistics included) agree within the parity bound -- and they moved."""
    result = train_parity(tiny(name), steps=20, optimizer=optimizer, batch=4, progress=False)
    assert result.ok, str(result)
    assert len(result.steps) == 20
    torch_losses, _ = result.losses
    assert torch_losses[0] != torch_losses[-1]
    assert max(result.weight_diffs) <= ATOL * max(1.0, result.steps[-1].weight_scale)


OPTIMIZER_VARIANTS = {
    "sgd-nesterov-l2-clip-cosine": {"kind": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                                    "weight_decay": 1e-3, "clip_norm": 0.5,
                                    "schedule": {"kind": "cosine", "min_lr": 0.001}},
    "sgd-plain-step": {"kind": "sgd", "lr": 0.1, "schedule": {"kind": "step", "step_size": 3}},
    "adam-l2-step-clip": {"kind": "adam", "lr": 3e-3, "weight_decay": 1e-2, "clip_norm": 0.2,
                          "betas": (0.8, 0.99), "eps": 1e-6,
                          "schedule": {"kind": "step", "step_size": 4, "gamma": 0.5}},
    "adamw-cosine": {"kind": "adamw", "lr": 1e-2, "weight_decay": 0.1,
                     "schedule": {"kind": "cosine"}},
}


@pytest.mark.parametrize("variant", [v for v in OPTIMIZER_VARIANTS if ON_TF or v in
                                     ("sgd-nesterov-l2-clip-cosine", "adam-l2-step-clip")])
def test_every_optimizer_setting_agrees(variant: str) -> None:
    """Momentum, Nesterov, both kinds of weight decay, clipping and both schedules, on an MLP with
    batch norm (its statistics are compared too); the learning rates follow the spec's own."""
    opt = optimizer_spec(OPTIMIZER_VARIANTS[variant])
    result = train_parity("mlp_784", steps=10, optimizer=opt, batch=8, progress=False,
                          hidden_sizes=(32, 16), input_size=24)
    assert result.ok, str(result)
    assert [s.lr for s in result.steps] == pytest.approx(
        [opt.schedule.lr(opt.lr, i, steps=10) for i in range(10)], rel=1e-12)


def test_keras_own_classes_where_the_maths_is_the_same() -> None:
    import keras

    from nnzoo.keras_impl.training import TorchAdam, TorchSGD, build_optimizer

    def cls(**fields: object) -> type:
        return type(build_optimizer(optimizer_spec(fields), steps=10))

    assert issubclass(cls(kind="sgd", momentum=0.9), keras.optimizers.SGD)
    assert issubclass(cls(kind="sgd", schedule={"kind": "step"}), keras.optimizers.SGD)
    assert cls(kind="sgd", momentum=0.9, schedule={"kind": "step"}) is TorchSGD
    assert cls(kind="sgd", weight_decay=1e-4) is TorchSGD
    assert cls(kind="sgd", clip_norm=1.0) is TorchSGD
    assert cls(kind="adam") is TorchAdam and cls(kind="adamw") is TorchAdam
    momentum64 = type(build_optimizer(optimizer_spec("sgd", momentum=0.9), steps=10,
                                      dtype="float64"))
    if keras.backend.backend() == "tensorflow":
        assert momentum64 is TorchSGD
    else:
        assert issubclass(momentum64, keras.optimizers.SGD)
    assert issubclass(type(build_optimizer(optimizer_spec("sgd", momentum=0.5), steps=10,
                                           dtype="float64")), keras.optimizers.SGD)  # exact
    opt = build_optimizer(optimizer_spec("adamw", clip_norm=2.0), steps=10)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(again) is TorchAdam and again.get_config() == opt.get_config()


def test_keras_sgd_momentum_in_float64() -> None:
    """Keras's SGD casts its momentum with `ops.cast`, through a float32 constant on TensorFlow
    (0.9 -> 0.8999999762): 20 float64 steps part from PyTorch by ~1e-8 of the weights' change
    there, by rounding (~1e-15) on JAX and PyTorch. nnzoo's choice (TorchSGD where it rounds)
    follows PyTorch on every backend."""
    import keras

    from nnzoo.keras_impl.training import floatx
    from nnzoo.probes import _train_pair

    opt = {"kind": "sgd", "lr": 0.1, "momentum": 0.9}
    with backends.float64_scope(), floatx("float64"):  # its rate in float64, as a user sets it
        stock = _train_pair(keras.optimizers.SGD(0.1, momentum=0.9), opt)
    ours = _train_pair(None, opt)
    assert ours < 1e-13
    if keras.backend.backend() == "tensorflow":
        assert stock > 1e-10, stock
    else:
        assert stock < 1e-13, stock


def test_stock_keras_adam_does_not_follow_pytorch_but_torch_adam_does() -> None:
    """Keras's Adam adds epsilon before the bias correction, PyTorch's after. On a regression fitted
    but for 1e-5 (gradients small, so epsilon matters, as late in training), stock Keras Adam with
    PyTorch's epsilon, or with an epsilon fitted to the last step, drifts > 50x further from
    PyTorch than nnzoo's TorchAdam, which stays within the parity bound. (TorchAdam's own ~4e-6 is
    Adam's sign-like first steps amplifying rounding in these near-zero gradients; measured on
    Keras/TensorFlow, where stock Keras drifts 2.5e-4..1.3e-3.)"""
    import keras

    from nnzoo.conversion import state_dict, transfer_weights
    from nnzoo.keras_impl.training import TorchAdam
    from nnzoo.keras_impl.training import Trainer as KerasTrainer
    from nnzoo.runtime import run
    from nnzoo.torch_impl.training import Trainer as TorchTrainer

    eps, beta2, lr, steps = 1e-8, 0.999, 1e-3, 8
    spec = nnzoo.get_spec("mlp_small", num_classes=2, hidden_sizes=(8,), input_size=4)
    loss, opt = LossSpec(kind="mse"), optimizer_spec("adam", lr=lr, eps=eps)
    x = spec.example_input(8 * steps, seed=3).astype(np.float64)
    y = run(backends.build_native(spec, "torch", seed=0, dtype="float64"), x)
    y = y + 1e-5 * np.random.default_rng(4).standard_normal(y.shape)

    def drift(keras_optimizer: object) -> list[float]:
        with backends.float64_scope():
            t = backends.build_native(spec, "torch", seed=0, dtype="float64")
            k = backends.build_native(spec, "keras", seed=0, dtype="float64")
            transfer_weights(t, k)
            pt, kt = TorchTrainer(t, opt, loss, steps=steps), KerasTrainer(k, opt, loss, steps=steps)
            kt.optimizer = keras_optimizer
            out = []
            for i in range(steps):
                pt.step(x[8 * i: 8 * i + 8], y[8 * i: 8 * i + 8])
                kt.step(x[8 * i: 8 * i + 8], y[8 * i: 8 * i + 8])
                a, b = state_dict(t), state_dict(k)
                out.append(max(float(np.max(np.abs(a[n] - b[n]))) for n in a))
        return out

    ours = max(drift(TorchAdam(lr, epsilon=eps)))
    assert ours <= ATOL, ours
    for constant in (eps, eps * np.sqrt(1 - beta2 ** steps)):
        stock = max(drift(keras.optimizers.Adam(lr, epsilon=constant)))
        assert stock > 50 * ours, (constant, stock, ours)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_dropout_is_the_same_in_distribution(rate: float) -> None:
    """Both frameworks' dropout keeps each value with probability 1 - p and scales what it keeps
    by 1 / (1 - p) (inverted dropout): the zeros are a fraction p (within 5 binomial standard
    deviations), the kept values exactly 1 / (1 - p), and the mean is preserved."""
    import keras
    import torch

    n = 200_000
    ones = np.ones((n,), dtype=np.float32)
    outputs = {
        "torch": torch.nn.Dropout(rate).train()(torch.from_numpy(ones)).numpy(),
        "keras": keras.ops.convert_to_numpy(keras.layers.Dropout(rate, seed=1)(ones, training=True)),
    }
    sigma = np.sqrt(rate * (1 - rate) / n)
    for framework, y in outputs.items():
        zeros = float(np.mean(y == 0))
        assert abs(zeros - rate) < 5 * sigma, (framework, zeros)
        np.testing.assert_allclose(y[y != 0], 1 / (1 - rate), rtol=1e-6, err_msg=framework)
        assert abs(float(y.mean()) - 1) < 5 * sigma / (1 - rate), framework


def test_attention_dropout_preserves_the_mean_in_both() -> None:
    """Attention dropout (on the attention probabilities, inside both frameworks' attention
    layers, which nnzoo pairs): averaged over many draws, the training-mode output of the same
    attention equals its inference output, in both frameworks."""
    import torch

    from nnzoo.keras_impl.attention import SelfAttention
    from nnzoo.runtime import to_numpy

    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 2, dropout=0.3, batch_first=True)
    layer = SelfAttention(16, 2, dropout=0.3, name="attn")
    x = np.random.default_rng(2).standard_normal((1, 6, 16)).astype(np.float32)
    layer(x, x)
    weights = {f"attn.{k}": v.detach().numpy() for k, v in mha.state_dict().items()}
    for link in layer.torch_links():
        for var, value in zip(link.variables, link.to_keras(weights[link.key])):
            var.assign(value)
    many = np.repeat(x, 4000, axis=0)
    with torch.no_grad():
        t = torch.from_numpy(x)
        expected = mha.eval()(t, t, t, need_weights=False)[0].numpy()[0]
        t = torch.from_numpy(many)
        draws = {"torch": mha.train()(t, t, t, need_weights=False)[0].numpy(),
                 "keras": to_numpy(layer(many, many, training=True))}
    np.testing.assert_allclose(to_numpy(layer(x, x))[0], expected, atol=1e-5)
    for framework, y in draws.items():
        assert y.std(axis=0).min() > 1e-3, framework  # dropout is active
        error = np.abs(y.mean(axis=0) - expected) / (y.std(axis=0) / np.sqrt(len(y)))
        assert error.max() < 5, (framework, error.max())


@pytest.mark.parametrize("name", ["mlp_784", "cnn_small_gap"])
def test_one_float64_step_moves_batch_norm_statistics_equally(name: str) -> None:
    """A float64 Keras build with batch norm trains (its statistics in float64, the unbiased
    variance, momentum 1 - m) on every backend: one step, the statistics agree to rounding."""
    result = train_parity(name, steps=1, batch=4, progress=False, **(
        {"image_size": 20, "hidden_sizes": (16,)} if name == "cnn_small_gap" else {}))
    assert result.ok, str(result)
    assert result.steps[0].weight_diff < 1e-10 * max(1.0, result.steps[0].weight_scale)


def test_table_and_figure(tmp_path) -> None:  # noqa: ANN001
    result = train_parity("mlp_small", steps=3, optimizer="adamw", progress=False, dropout=0.2)
    text = str(result)
    assert "OK" in text and "dropout=0.2 -> 0" in text and "loss torch" in text
    assert text.count("\n") >= 6 and result.to_dict()["steps"][2]["step"] == 3
    png = result.plot(tmp_path / "curves.png")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_user_data_and_regression() -> None:
    spec = nnzoo.get_spec("mlp_small", num_classes=3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 32)).astype(np.float32)
    y = rng.standard_normal((10, 3))
    result = train_parity(spec, steps=4, loss="mse", data=(x, y), batch=4, progress=False)
    assert result.ok and result.loss.kind == "mse", str(result)
    again = train_parity(spec, steps=4, loss="mse", data=(x, y), batch=4, progress=False)
    assert result.losses == again.losses  # same weights, same batches: reproducible


@TF_ONLY
def test_digits_example_trains_both_frameworks_alike(tmp_path) -> None:  # noqa: ANN001
    """examples/digits.py at a small size: scikit-learn's bundled digits, one zoo CNN, the same
    initial weights; the curves agree and both frameworks learn (accuracy well above chance)."""
    pytest.importorskip("sklearn", reason="scikit-learn (the digits data) is not installed")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "digits.py"
    spec = importlib.util.spec_from_file_location("digits_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    # float64: in float32 the two trajectories part after ~15 steps (measured: 2.5e-3 at step 19)
    out = example.main(["--epochs", "3", "--limit", "300", "--batch", "32", "--model", "cnn_small",
                        "--dtype", "float64", "--out", str(tmp_path / "digits.png")])
    assert out["result"].ok, str(out["result"])
    assert min(out["accuracy"].values()) > 0.5  # ten classes: chance is 0.1
    assert abs(out["accuracy"]["torch"] - out["accuracy"]["keras"]) <= 0.02  # 1 of 60 images
    assert (tmp_path / "digits.png").stat().st_size > 10_000


def test_piecewise_differences_match_whole_array_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gradient comparison's differences, formed a piece at a time in one buffer, are the
    whole-array ones; a NaN anywhere is not skipped, and a shape mismatch never passes."""
    import nnzoo.training as training

    monkeypatch.setattr(training, "PIECE", 7)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 9)), rng.standard_normal((5, 9)).astype(np.float32)
    assert training.max_abs_diff(a, b) == np.max(np.abs(a - b))
    assert training.max_abs_diff(a.T, b.T) == np.max(np.abs(a - b))  # strided views
    assert training.max_abs(a) == np.max(np.abs(a)) and training.max_abs(np.zeros(0)) == 0.0
    b[4, 8] = np.nan
    assert np.isnan(training.max_abs_diff(a, b)) and np.isnan(training.max_abs(b))
    assert np.isnan(training.largest([1.0, np.nan, 2.0])) and training.largest([]) == 0.0
    assert training.max_abs_diff(a, a[:4]) == np.inf
