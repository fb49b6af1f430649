"""The `nnzoo` command, run in-process (its argument handling) and once as a real program."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nnzoo.cli import main, parse_overrides


def test_parse_overrides_reads_json_then_text() -> None:
    assert parse_overrides(["num_classes=10", "hidden_sizes=[64,32]", "norm=batch", "bias=false"]) == {
        "num_classes": 10, "hidden_sizes": [64, 32], "norm": "batch", "bias": False}


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "mlp*"]) == 0
    out = capsys.readouterr().out
    assert "mlp_784" in out and "mlp_small" in out and "cnn_small" not in out


def test_info_shows_spec_and_equal_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "mlp_small", "num_classes=3"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["spec"]["num_classes"] == 3
    assert info["counts"]["torch"] == info["counts"]["keras"]


@pytest.mark.parametrize(
    ("overrides", "trainable", "flops"),
    [
        (["image_size=[64,64]"], (1.0, 1.0), (3.9, 4.0)),  # higher resolution: the same weights
        (["widths=[128,256,512,1024]"], (3.9, 4.0), (3.8, 4.0)),  # wider: ~width^2 both
        (["layers=[4,4,4,4]"], (1.9, 2.2), (1.9, 2.1)),  # deeper: ~depth both
        (["image_size=[48,48]", "widths=[96,192,384,768]", "layers=[3,3,3,3]"],  # compound
         (3.4, 3.6), (7.5, 8.0)),
    ],
)
def test_info_shows_what_a_scaling_does(overrides: list[str], trainable: tuple[float, float],
                                        flops: tuple[float, float],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The seed's scalings (higher resolution, wider, deeper, all three) are overrides of a model;
    `info` sets the scaled model's trainable parameters and FLOPs against the registered one's."""
    assert main(["info", "resnet18_cifar", *overrides]) == 0
    info = json.loads(capsys.readouterr().out)
    scaling = info["scaling"]
    assert scaling["scaled"]["trainable"] == info["counts"]["torch"]["trainable"]
    for key, (low, high) in {"trainable": trainable, "flops": flops}.items():
        assert scaling["ratio"][key] == scaling["scaled"][key] / scaling["base"][key]
        assert low <= scaling["ratio"][key] <= high, (key, scaling)


def test_info_scales_efficientnet_by_its_coefficients(capsys: pytest.CaptureFixture[str]) -> None:
    """EfficientNet's compound scaling is three overrides of B0: B3's coefficients give B3's
    network (torchvision's count) and say what they cost against B0."""
    from nnzoo.registry import entry

    assert main(["info", "efficientnet_b0", "width_mult=1.2", "depth_mult=1.4",
                 "image_size=300"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["counts"]["torch"]["trainable"] == entry("efficientnet_b3").published["trainable"]
    assert 2.3 <= info["scaling"]["ratio"]["trainable"] <= 2.4  # 12.2M / 5.3M
    assert info["scaling"]["ratio"]["flops"] > 4  # deeper and 1.8x the pixels


def test_parity_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parity", "mlp_small", "cnn_small_gap"]) == 0
    out = capsys.readouterr().out
    assert "2/2 models OK" in out
    assert main(["parity", "mlp_small", "--json", "--numeric"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["agreement"][0]["max_abs"] < 1e-5


def test_parity_layers_names_each_layer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parity", "mlp_small", "--layers"]) == 0
    out = capsys.readouterr().out
    assert "hidden.0.fc" in out and "head" in out


def test_errors_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "resnet343"]) == 2
    assert "unknown model 'resnet343'" in capsys.readouterr().err
    assert main(["parity"]) == 2
    assert main(["info", "mlp_small", "oops"]) == 2


def test_parity_exits_1_when_a_model_fails(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import nnzoo.parity as parity

    real = parity.count_params
    calls = iter(range(100))
    monkeypatch.setattr(parity, "count_params",
                        lambda m: parity.ParamCount(real(m).trainable + next(calls), 0))
    assert main(["parity", "mlp_small"]) == 1
    assert "counts differ" in capsys.readouterr().out


def test_the_installed_command_runs() -> None:
    exe = [sys.executable, "-m", "nnzoo.cli", "list", "cnn_*"]
    out = subprocess.run(exe, capture_output=True, text=True, check=True)
    assert "cnn_small" in out.stdout


def test_parity_train_prints_both_curves_and_writes_the_figure(
        capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # noqa: ANN001
    """`nnzoo parity NAME --train`: gradients in float64 and float32, then the per-step table."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    assert main(["parity", "mlp_small", "--train", "--steps", "3", "--optimizer", "adamw",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "gradients of cross_entropy (float64): OK" in out and "(float32)" in out
    assert "trained 3 steps: OK" in out and "loss torch" in out and "loss keras" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_parity_train_refuses_an_unknown_optimizer(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["parity", "mlp_small", "--train", "--optimizer", "rmsprop"])
    assert "rmsprop" in capsys.readouterr().err
