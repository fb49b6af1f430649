"""`nnzoo explain`: both builds row by row, totals equal, and the differences that apply."""

from __future__ import annotations

import pytest
from helpers import smallest

import nnzoo
from nnzoo.cli import main
from nnzoo.explain import describe_keras, describe_torch, explain
from nnzoo.specs import FAMILIES


@pytest.mark.parametrize("family", [f for f in FAMILIES if nnzoo.list_models(family=f)])
def test_rows_add_up_to_equal_totals(family: str) -> None:
    e = explain(smallest(family))
    assert e.totals_agree, (e.torch_count, e.keras_count)
    assert sum(r.torch_params for r in e.rows) == e.torch_count.total
    assert sum(r.keras_params for r in e.rows) == e.keras_count.total
    assert all(r.torch_params == r.keras_params for r in e.rows), [
        r.path for r in e.rows if r.torch_params != r.keras_params]
    weighted = [r for r in e.rows if r.torch_params]
    assert weighted and all(r.keras != "-" and r.torch != "-" for r in weighted)
    assert all(r.shape is not None for r in e.rows)
    text = str(e)
    assert "total: PyTorch" in text and ": equal" in text and "default initialisation" in text.lower()


def test_resnet34_shows_both_forms_and_measured_differences(capsys: pytest.CaptureFixture[str]) -> None:
    if "resnet34" not in nnzoo.list_models():
        pytest.skip("resnet34 is not registered")
    assert main(["explain", "resnet34", "image_size=[64,64]"]) == 0
    out = capsys.readouterr().out
    assert "Conv2d(64, 128, k=3, s=2, p=1, bias=False)" in out
    assert "Conv2D(128, 3, strides=2, padding='valid', use_bias=False) after ZeroPadding2D(1)" in out
    assert "MaxPooling2D(3, strides=2, padding='valid') after Pad2D(1, value=-inf)" in out
    assert "layer1.0.add" in out and "(1, 512, 2, 2)" in out  # a 64x64 input ends at 2x2
    assert "21,814,696" in out and ": equal" in out
    for title in ("Batch-norm epsilon", "Stride-2 convolution padding", "Max-pool 3x3",
                  "Image layout"):
        assert title in out
    assert "bn_eps=1e-05" in out and "measured" in out


def test_lstm_shows_the_bias_difference_in_this_model(capsys: pytest.CaptureFixture[str]) -> None:
    if "lstm" not in nnzoo.list_models():
        pytest.skip("lstm is not registered")
    assert main(["explain", "lstm"]) == 0
    out = capsys.readouterr().out
    assert "LSTM(100, 128, num_layers=2, batch_first=True, dropout=0.3)" in out
    assert "RecurrentLayer('lstm', 128)" in out and "251,146" in out
    assert "LSTM biases" in out and "in this model: 1,024 parameters" in out
    assert "Batch-norm" not in out


def test_flatten_and_container_rows() -> None:
    e = explain("cnn_small")
    pool = next(r for r in e.rows if r.path == "pool")
    assert pool.keras == "Permute((3, 1, 2)) + Flatten()" and pool.shape == (1, 2048)


def test_descriptions() -> None:
    torch = pytest.importorskip("torch")
    assert describe_torch(torch.nn.Conv2d(64, 128, 3, 2, 1, bias=False)) == \
        "Conv2d(64, 128, k=3, s=2, p=1, bias=False)"
    assert describe_torch(torch.nn.Linear(8, 4)) == "Linear(8, 4)"
    assert describe_torch(torch.nn.MultiheadAttention(16, 2, batch_first=True)) == \
        "MultiheadAttention(16, heads=2, batch_first=True)"
    from nnzoo import backends

    backends.require("keras")
    import keras

    assert describe_keras(keras.layers.Conv2D(8, 3, strides=2, use_bias=False)) == \
        "Conv2D(8, 3, strides=2, padding='valid', use_bias=False)"
    assert describe_keras(keras.layers.ZeroPadding2D(1)) == "ZeroPadding2D(1)"
    assert describe_keras(keras.layers.Dense(4)) == "Dense(4)"


def test_errors_are_nnzoo_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "resnet343"]) == 2
    assert "unknown model" in capsys.readouterr().err
