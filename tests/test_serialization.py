"""Each framework's own formats keep everything: `.keras` files, configs, state dicts, export.

One model per family (its smallest variant) is saved and reloaded; outputs must be identical.
Every family's `.keras` file is written and read back by `keras.models.load_model` (no
custom_objects), outputs equal bit for bit, in test_export (`test_keras_exports`, on every Keras
backend); here, the file in a fresh process and the config round trip.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import nnzoo
from conftest import smallest_per_family
from nnzoo.runtime import run

FAMILY_MODELS = smallest_per_family()


@pytest.mark.keras
def test_keras_file_loads_in_a_fresh_process(tmp_path: Path) -> None:
    """Only `import nnzoo.keras_impl` (which registers the classes) is needed, no custom_objects."""
    model = nnzoo.build("cnn_small_gap", "keras", seed=0)
    x = model.spec.example_input()
    np.save(tmp_path / "y.npy", run(model, x))
    np.save(tmp_path / "x.npy", x)
    model.save(tmp_path / "m.keras")
    code = (
        "import numpy as np, keras, nnzoo.keras_impl\n"
        "from nnzoo.runtime import run\n"
        f"m = keras.models.load_model({str(tmp_path / 'm.keras')!r})\n"
        f"y = run(m, np.load({str(tmp_path / 'x.npy')!r}))\n"
        f"print(np.array_equal(y, np.load({str(tmp_path / 'y.npy')!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("True")


@pytest.mark.keras
@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_keras_config_round_trip(name: str) -> None:
    model = nnzoo.build(name, "keras", seed=0)
    twin = type(model).from_config(model.get_config())
    twin.set_weights(model.get_weights())
    x = model.spec.example_input()
    assert twin.spec == model.spec
    # compiled: on JAX one program per model (each eager op compiles per shape); the same
    # program for both, so still bit for bit
    np.testing.assert_array_equal(run(model, x, compiled=True), run(twin, x, compiled=True))


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_torch_state_dict_round_trip(name: str, tmp_path: Path) -> None:
    import torch

    model = nnzoo.build(name, "torch", seed=0)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    fresh = nnzoo.build(name, "torch", seed=1)
    fresh.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True), strict=True)
    x = model.spec.example_input()
    np.testing.assert_array_equal(run(model, x), run(fresh, x))


def _packs_sequences(spec: nnzoo.Spec) -> bool:
    """Recurrent models over padded token ids pack their sequences: lengths come from the data."""
    return spec.family == "recurrent" and spec.input == "tokens" and spec.padding_idx is not None


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_torch_export(name: str) -> None:
    """Every family exports; a recurrent model exports without packing (README: the exception).

    torch.export warns about any `nn.GRU`/`nn.LSTM`: their `forward` re-assigns `_flat_weights`,
    which export puts back afterwards (PyTorch turned that error into this warning for RNNs,
    pytorch/pytorch#163809). `nnzoo.export` keeps it from a user's script; called directly, it is
    expected here, and the model it was said about must still run as before (checked below)."""
    import torch

    spec = nnzoo.get_spec(name)
    if _packs_sequences(spec):
        spec = spec.replace(padding_idx=None)
    model = nnzoo.build(spec, "torch", seed=0).eval()
    x = torch.from_numpy(spec.example_input())
    if spec.family == "recurrent":
        with pytest.warns(UserWarning, match=r"_flat_weights.* were assigned during export"):
            exported = torch.export.export(model, (x,))
    else:
        exported = torch.export.export(model, (x,))
    with torch.no_grad():
        np.testing.assert_allclose(exported.module()(x).numpy(), model(x).numpy(),
                                   rtol=1e-6, atol=1e-6)


def test_packed_sequences_do_not_export() -> None:
    """The documented exception is real (if PyTorch learns to export it, update the README)."""
    import torch

    spec = nnzoo.get_spec("gru")
    assert _packs_sequences(spec)
    model = nnzoo.build(spec, "torch", seed=0).eval()
    with warnings.catch_warnings(record=True) as caught, pytest.raises(Exception):  # noqa: B017
        warnings.simplefilter("always")  # (the error type is PyTorch's to choose)
        torch.export.export(model, (torch.from_numpy(spec.example_input()),))
    assert all("_flat_weights" in str(w.message) for w in caught)  # its RNN warning only
