"""Export: every format each backend writes, for one small model of every family, reloaded in its
own runtime and checked against the native build; the ONNX files of the two builds agree; what
cannot be written raises nnzoo's error, naming why and what can.

Keras-marked tests run under each Keras backend (`make test`): each asserts its backend's column
of the README's table (on JAX a SavedModel goes through jax2tf: the slowest of them, ~20 s per
family). The PyTorch ones run once.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnzoo
from conftest import smallest_per_family
from nnzoo.errors import BackendNotInstalledError, ExportFormatError, WeightTransferError
from nnzoo.exporting import FORMATS, formats, runtimes, writable, writer_of

pytest.importorskip("onnxruntime", reason="the export extra is not installed")

#: small overrides: the smallest variant of each family, shrunk so an export takes seconds.
#: The recurrent model is built without a padding id: PyTorch cannot trace packed sequences
#: (test_packed_sequences_refuse_torch_export checks that error).
SMALL: dict[str, dict[str, Any]] = {
    "mlp": {},
    "cnn": {},
    "recurrent": {"hidden_size": 16, "embed_dim": 8, "vocab_size": 50, "padding_idx": None},
    "transformer": {"embed_dim": 16, "depth": 1, "num_heads": 2, "mlp_dim": 32, "vocab_size": 50},
    "resnet": {"layers": [1, 1, 1, 1], "widths": [8, 16, 16, 16], "stem_width": 8,
               "image_size": [16, 16]},
    "unet": {"base_width": 4, "depth": 2, "image_size": [16, 16]},
    "vit": {"image_size": [32, 32], "depth": 1, "embed_dim": 16, "num_heads": 2, "mlp_dim": 32,
            "num_classes": 10},
    "convnext": {"layers": [1, 1], "widths": [8, 16], "image_size": [16, 16], "layer_scale": 0.5},
    "hybrid": {"stages": [{"channels": 8}], "image_size": [16, 16], "attention_layers": 1,
               "mlp_dim": 16, "num_heads": 2},
    "mobilenet": {"blocks": [{"channels": 8, "expanded": 16, "se": True, "stride": 2},
                             {"channels": 8, "expanded": 24, "activation": "hardswish"}],
                  "stem_width": 8, "last_width": 16, "hidden_width": 8, "image_size": [16, 16]},
    "efficientnet": {"stages": [{"expand_ratio": 2, "kernel": 3, "stride": 2, "channels": 8,
                                 "layers": 2}], "stem_width": 8, "head_ratio": 2,
                     "image_size": [16, 16]},
}
FAMILY_MODELS = smallest_per_family()
#: formats read back by the framework (and backend) that wrote them: the same program runs on the
#: same weights, so the outputs are equal bit for bit (the `.keras` round trip of every family)
SAME_RUNTIME = ("keras", "safetensors")
_BUILDS: dict[tuple[str, str], Any] = {}  # (name, backend) -> model; the Keras one is a twin


def small(name: str) -> nnzoo.Spec:
    spec = nnzoo.get_spec(name)
    return spec.replace(**SMALL[spec.family])


def built(name: str, backend: str) -> Any:
    """The small PyTorch build, and its Keras twin with the same weights (built once each)."""
    if (name, "torch") not in _BUILDS:
        _BUILDS[name, "torch"] = nnzoo.build(small(name), "torch", seed=0)
    if backend == "keras" and (name, "keras") not in _BUILDS:
        _BUILDS[name, "keras"] = nnzoo.convert(_BUILDS[name, "torch"], "keras")
    return _BUILDS[name, backend]


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export")


def artifact(out: Path, name: str, writer: str, fmt: str) -> Path:
    return out / f"{name}-{writer.replace('/', '-')}{FORMATS[fmt].suffix}"


def round_trips(name: str, backend: str, out: Path) -> None:
    """Every format the writer can write: written, reloaded, checked; every other one refused."""
    model = built(name, backend)
    spec = model.spec
    writer = writer_of(backend, nnzoo.backends.keras_backend() if backend == "keras" else None)
    table = writable(writer, spec)
    can = [f for f, why in table.items() if why is None]
    free_spatial = spec.input_kind == "image" and spec.flexible_axes(channels_last=False)
    for fmt, why in table.items():
        path = artifact(out, name, writer, fmt)
        if why is not None:
            with pytest.raises(ExportFormatError, match="it can be written as") as info:
                nnzoo.export(model, fmt, path)
            assert info.value.can == can and not path.exists()
            continue
        result = nnzoo.export(model, fmt, path)
        assert result.ok and path.exists() and result.size > 0
        if fmt in SAME_RUNTIME:  # reloaded by the framework that wrote it: bit for bit
            assert all(a.max_abs == 0 for _, a in result.checks), str(result)
        shapes = [shape for shape, _ in result.checks]
        assert [s[0] for s in shapes[:2]] == [1, 7] and "batch" in result.free
        if free_spatial:  # the spatial size stays free, and a second size was checked
            assert {"height", "width"} <= set(result.free) and len(shapes) == 3, result


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_torch_exports(name: str, out: Path) -> None:
    """...and pass no exporter's warning on to the user's script: torch.export warns about every
    `nn.GRU` and `nn.LSTM` (`test_serialization.test_torch_export`), the ONNX exporter chats."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        round_trips(name, "torch", out)
    assert [str(w.message)[:200] for w in caught] == []


@pytest.mark.keras
@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_keras_exports(name: str, out: Path) -> None:
    round_trips(name, "keras", out)


@pytest.mark.keras
@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_onnx_and_safetensors_agree_across_frameworks(name: str, out: Path) -> None:
    """The ONNX files of the PyTorch build and of its Keras twin give the same outputs in
    onnxruntime; their safetensors files hold the same arrays under the same keys."""
    from nnzoo.parity import compare, rounding_noise

    torch_model, keras_model = built(name, "torch"), built(name, "keras")
    spec = torch_model.spec
    writer = writer_of("keras", nnzoo.backends.keras_backend())
    paths = {w: artifact(out, name, w, "safetensors") for w in ("torch", writer)}
    for w, model in (("torch", torch_model), (writer, keras_model)):
        if not paths[w].exists():
            nnzoo.export(model, "safetensors", paths[w], check=False)
    a, b = (nnzoo.safetensors_io.read(p) for p in paths.values())
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    if writable(writer, spec)["onnx"] is not None:
        return  # this Keras backend writes no ONNX: test_keras_exports asserts the error
    onnx = {}
    for w, model, backend in (("torch", torch_model, "torch"), (writer, keras_model, "keras")):
        path = artifact(out, name, w, "onnx")
        if not path.exists():
            nnzoo.export(model, "onnx", path, check=False)
        onnx[backend] = runtimes.load("onnx", path, spec, backend)
    for x in (spec.example_input(1, seed=3), spec.example_input(7, seed=4)):
        y_torch, y_keras = onnx["torch"].call(x), onnx["keras"].call(x)
        agreement = compare(y_torch, y_keras, "onnx torch->keras", "float32",
                            rounding_noise(torch_model, x, y_torch))
        assert agreement.ok, agreement


# ---- what cannot be exported, and why -----------------------------------------------------------
def test_packed_sequences_refuse_torch_export(tmp_path: Path) -> None:
    """The recurrent model over padded token ids (packing) cannot be traced: nnzoo says so."""
    model = nnzoo.build("gru", "torch", **{k: v for k, v in SMALL["recurrent"].items()
                                            if k != "padding_idx"})
    for fmt in ("onnx", "pt2"):
        with pytest.raises(ExportFormatError, match="padding_idx=None") as info:
            nnzoo.export(model, fmt, tmp_path / f"gru{FORMATS[fmt].suffix}")
        assert info.value.can == ["safetensors"]


def test_errors_come_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = built("mlp_small", "torch")
    with pytest.raises(ExportFormatError, match="unknown format.*onnx, pt2"):
        nnzoo.export(model, "tflite", tmp_path / "m.tflite")
    with pytest.raises(ExportFormatError, match=r"must end in \.onnx"):
        nnzoo.export(model, "onnx", tmp_path / "m.bin")
    with pytest.raises(ExportFormatError, match="export the Keras build.*onnx, pt2, safetensors"):
        nnzoo.export(model, "litert", tmp_path / "m.tflite")
    real = formats.importlib.util.find_spec
    monkeypatch.setattr(formats.importlib.util, "find_spec",
                        lambda n, *a: None if n == "onnxscript" else real(n, *a))
    with pytest.raises(BackendNotInstalledError, match=r'onnxscript.*pip install "nnzoo\[export\]"'):
        nnzoo.export(model, "onnx", tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_export_is_lazy_and_safetensors_needs_no_framework(tmp_path: Path) -> None:
    """`import nnzoo` imports no framework; a safetensors file is read with numpy alone."""
    path = tmp_path / "w.safetensors"
    nnzoo.export(built("mlp_small", "torch"), "safetensors", path, check=False)
    code = ("import sys, nnzoo, nnzoo.exporting\n"
            "from safetensors.numpy import load_file\n"
            f"w = load_file({str(path)!r})\n"
            "assert callable(nnzoo.export) and 'head.weight' in w\n"
            "print(sorted({'torch', 'tensorflow', 'keras', 'jax'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    meta = nnzoo.safetensors_io.read_metadata(path)
    assert meta["format"] == "pt" and '"family": "mlp"' in meta["nnzoo.spec"]


# ---- safetensors as a weights file --------------------------------------------------------------
@pytest.mark.keras
def test_safetensors_weights_in_build_and_convert(tmp_path: Path) -> None:
    """`nnzoo convert --out x.safetensors` and `build(weights=...)`, either backend, both ways."""
    from nnzoo.cli import main
    from nnzoo.parity import compare

    torch_model = nnzoo.build("cnn_small", "torch", seed=0)
    nnzoo.conversion.save_weights(torch_model, tmp_path / "t.pt")
    assert main(["convert", "cnn_small", "--weights", str(tmp_path / "t.pt"), "--to", "keras",
                 "--out", str(tmp_path / "k.safetensors")]) == 0
    keras_model = nnzoo.build("cnn_small", "keras", weights=tmp_path / "k.safetensors")
    back = nnzoo.build("cnn_small", "torch", weights=tmp_path / "k.safetensors")
    x = torch_model.spec.example_input(3)
    y = nnzoo.runtime.run(torch_model, x)
    assert np.array_equal(nnzoo.runtime.run(back, x), y)
    assert compare(y, nnzoo.runtime.run(keras_model, x), "k", "float32").ok
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WeightTransferError, match="cannot read"):
        nnzoo.build("cnn_small", "torch", weights=tmp_path / "bad.safetensors")


def test_torchvision_state_dict_as_safetensors(tv_models: Any, tmp_path: Path) -> None:
    """torchvision's own keys (num_batches_tracked included) load from a safetensors file."""
    import torch
    from safetensors.torch import save_file

    reference = tv_models.resnet18().eval()
    save_file(reference.state_dict(), str(tmp_path / "tv.safetensors"))
    model = nnzoo.build("resnet18", "torch", weights=tmp_path / "tv.safetensors")
    x = nnzoo.get_spec("resnet18").quick().example_input(2)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(nnzoo.runtime.run(model, x), expected)


def test_cli_export_prints_the_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nnzoo.cli import main

    path = tmp_path / "m.onnx"
    assert main(["export", "mlp_small", "hidden_sizes=[16]", "--backend", "torch", "--format",
                 "onnx", "--out", str(path)]) == 0
    printed = capsys.readouterr().out
    assert path.exists() and "max |artifact - native| = " in printed and "bound: met" in printed
    assert main(["export", "mlp_small", "--backend", "torch", "--format", "keras",
                 "--out", str(tmp_path / "m.keras")]) == 2
    assert "it can be written as: onnx, pt2, safetensors" in capsys.readouterr().err


def test_readme_table_is_the_support_table() -> None:
    """The README's families x formats table is the one `formats.markdown_table()` writes from
    the rules the tests above exercise cell by cell."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert formats.markdown_table(FAMILY_MODELS) in readme
