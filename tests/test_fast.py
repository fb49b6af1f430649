"""`nnzoo.optimize`: the fast path computes what the model computes.

Correctness only: how fast it is is the benchmarks' business (`python -m benchmarks.run`),
never a unit test's, on machines as noisy as shared CI runners.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

import nnzoo
from nnzoo.layout import to_keras

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")

#: channels-last convolutions may sum in another order: float32 round-off, nothing more.
ATOL = 1e-5


def _torch_reference(model, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name", ["cnn_small", "mlp_small"])
def test_torch_fast_path_matches_eval_model(name: str) -> None:
    model = nnzoo.build(name, "torch", seed=0)
    x = model.spec.example_input(3, seed=1)
    want = _torch_reference(model, x)
    model.train()  # optimize must switch to inference mode itself
    fast = nnzoo.optimize(model)
    got = fast(torch.from_numpy(x))
    assert not model.training
    assert fast.model is model and fast.backend == "torch"
    np.testing.assert_allclose(got.numpy(), want, atol=ATOL * max(1.0, np.abs(want).max()), rtol=0)


def test_torch_image_model_goes_channels_last() -> None:
    model = nnzoo.build("cnn_small", "torch", seed=0)
    fast = nnzoo.optimize(model)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert "channels_last" in fast.description
    # the caller keeps passing ordinary NCHW tensors, of any batch size
    for batch in (1, 4):
        x = torch.from_numpy(model.spec.example_input(batch, seed=batch))
        assert tuple(fast(x).shape) == model.spec.output_shape(batch)


def test_torch_non_image_model_keeps_its_layout() -> None:
    model = nnzoo.build("mlp_small", "torch", seed=0)
    assert "channels_last" not in nnzoo.optimize(model).description


def test_torch_plain_module_is_accepted() -> None:
    """Not only nnzoo builds: any module, image-ness inferred from its Conv2d layers."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    want = _torch_reference(model, x)
    fast = nnzoo.optimize(model)
    assert "channels_last" in fast.description
    np.testing.assert_allclose(fast(torch.from_numpy(x)).numpy(), want, atol=ATOL, rtol=0)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile (inductor) needs a C++ compiler")
def test_torch_compile_matches() -> None:
    model = nnzoo.build("mlp_small", "torch", seed=0)
    x = model.spec.example_input(2, seed=1)
    want = _torch_reference(model, x)
    fast = nnzoo.optimize(model, compile=True)
    np.testing.assert_allclose(fast(torch.from_numpy(x)).numpy(), want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["cnn_small", "mlp_small"])
@pytest.mark.parametrize("compile", [False, True], ids=["function", "xla"])
def test_keras_fast_path_matches_inference_call(name: str, compile: bool) -> None:
    model = nnzoo.build(name, "keras", seed=0)
    x = to_keras(model.spec.example_input(3, seed=1), model.spec.input_kind)
    want = np.asarray(model(x, training=False))
    fast = nnzoo.optimize(model, compile=compile)
    assert fast.backend == "keras" and fast.model is model
    got = np.asarray(fast(x))
    np.testing.assert_allclose(got, want, atol=ATOL * max(1.0, np.abs(want).max()), rtol=0)


def test_keras_one_trace_serves_every_batch_size() -> None:
    model = nnzoo.build("cnn_small", "keras", seed=0)
    fast = nnzoo.optimize(model)
    for batch in (1, 2, 5):
        x = to_keras(model.spec.example_input(batch, seed=batch), "image")
        assert tuple(np.asarray(fast(x)).shape) == model.spec.output_shape(batch)
    assert fast._fn.experimental_get_tracing_count() == 1


def test_keras_signature_keeps_free_spatial_axes() -> None:
    """A ResNet takes any image size; its fast path must too, without retracing per batch."""
    from nnzoo.fast import input_signature

    model = nnzoo.build("resnet18", "keras", seed=0, widths=(4, 4, 4, 4), num_classes=3)
    (sig,) = input_signature(model)
    assert tuple(sig.shape) == (None, None, None, 3)
    x = to_keras(model.spec.example_input(2, seed=0), "image")[:, :64, :48]
    want = np.asarray(model(x, training=False))
    np.testing.assert_allclose(np.asarray(nnzoo.optimize(model)(x)), want, atol=ATOL, rtol=0)


def test_keras_plain_functional_model_is_accepted() -> None:
    import keras

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(nnzoo.optimize(model)(x)), np.asarray(model(x)),
                               atol=ATOL, rtol=0)


def test_not_a_model_is_refused() -> None:
    with pytest.raises(TypeError, match="torch.nn.Module or a keras.Model"):
        nnzoo.optimize(object())


def test_optimize_imports_no_framework() -> None:
    code = "import sys, nnzoo; nnzoo.optimize; print('torch' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
