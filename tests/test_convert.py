"""Weight transfer, checkpoint files, and one training step's batch-norm statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import keras_draws

import nnzoo
from nnzoo.conversion import load_state_dict, save_weights, state_dict
from nnzoo.errors import WeightTransferError
from nnzoo.parity import compare, exercise_state, run

MODELS = ["mlp_784", "cnn_separable", "cnn_small_gap"]


@pytest.mark.keras
@pytest.mark.parametrize("name", MODELS)
def test_round_trip_torch_keras_torch_is_bit_exact(name: str) -> None:
    torch_model = nnzoo.build(name, "torch", seed=1)
    exercise_state(torch_model, 0)
    back = nnzoo.convert(nnzoo.convert(torch_model, "keras"), "torch")
    a, b = state_dict(torch_model), state_dict(back)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.keras
def test_convert_gives_equal_outputs() -> None:
    torch_model = nnzoo.build("cnn_small", "torch", seed=3)
    keras_model = nnzoo.convert(torch_model, "keras")
    x = torch_model.spec.example_input()
    assert compare(run(torch_model, x), run(keras_model, x), "t->k").ok


@pytest.mark.keras
def test_a_converted_twin_draws_no_initial_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its own initial values would be overwritten, so `convert` draws none (on Keras's JAX
    backend each weight shape's draw was an XLA compilation: 37 s for the eleven families), and
    none of the zeros it builds with survive: every family, both ways, equal bit for bit."""
    import torch

    from conftest import tiny_per_family
    from nnzoo.conversion import _all_loaded

    draws = keras_draws(monkeypatch)
    for spec in tiny_per_family():
        for source, target in (("torch", "keras"), ("keras", "torch")):
            model = nnzoo.build(spec, source, seed=2)
            exercise_state(model, 0)
            torch_state = torch.random.get_rng_state()
            twin = nnzoo.convert(model, target)
            assert draws == [] and torch.equal(torch.random.get_rng_state(), torch_state)
            a, b = state_dict(model), state_dict(twin)
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), spec
    # and a placeholder that nothing loaded is an error, not a silent zero
    model = nnzoo.build("mlp_small", "keras")
    with pytest.raises(WeightTransferError, match="placeholder values.*\n.*kernel"):
        _all_loaded(model, [model.weights[0], _Unlinked()])


class _Unlinked:
    """A Keras variable of no layer: no link can load it."""

    path = "dense/kernel (no layer)"


def test_different_specs_are_refused_with_the_differing_fields() -> None:
    a = nnzoo.build("mlp_small", "torch")
    b = nnzoo.build("mlp_small", "keras", num_classes=3)
    with pytest.raises(WeightTransferError, match=r"different specs[\s\S]*num_classes: 10 vs 3"):
        nnzoo.transfer_weights(a, b)


def test_mismatch_lists_every_offending_name_and_writes_nothing() -> None:
    model = nnzoo.build("mlp_small", "keras", seed=0)
    before = state_dict(model)
    weights = dict(before)
    weights.pop("head.bias")
    weights["hidden.0.fc.weight"] = np.zeros((3, 3), np.float32)
    weights["stray.weight"] = np.zeros(1, np.float32)
    weights["hidden.1.fc.bias"] = weights["hidden.1.fc.bias"] + 1.0  # valid, must not be written
    with pytest.raises(WeightTransferError) as info:
        load_state_dict(model, weights)
    message = str(info.value)
    for key in ("head.bias: missing", "stray.weight: unexpected", "hidden.0.fc.weight: shape (3, 3)"):
        assert key in message
    after = state_dict(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.keras
@pytest.mark.parametrize("source", ["torch", "keras"])
@pytest.mark.parametrize("target", ["torch", "keras"])
def test_checkpoint_files_load_into_either_backend(tmp_path: Path, source: str, target: str) -> None:
    model = nnzoo.build("cnn_small_gap", source, seed=5)
    exercise_state(model, 1)
    path = save_weights(model, tmp_path / ("w.pt" if source == "torch" else "w.weights.h5"))
    loaded = nnzoo.build("cnn_small_gap", target, weights=path)
    x = model.spec.example_input()
    assert compare(run(model, x), run(loaded, x), "file").ok
    a, b = state_dict(model), state_dict(loaded)
    assert all(np.allclose(a[k], b[k], rtol=0, atol=0) for k in a)


def test_training_checkpoint_wrappers_are_unwrapped(tmp_path: Path) -> None:
    import torch

    model = nnzoo.build("mlp_small", "torch", seed=2)
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, tmp_path / "ckpt.pt")
    loaded = nnzoo.build("mlp_small", "keras", weights=tmp_path / "ckpt.pt")
    assert compare(run(model, model.spec.example_input()),
                   run(loaded, model.spec.example_input()), "ckpt").ok


def test_bad_checkpoints_get_clear_errors(tmp_path: Path) -> None:
    corrupt = tmp_path / "bad.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightTransferError, match="cannot read .*bad.pt.* as a PyTorch state dict"):
        nnzoo.build("mlp_small", "keras", weights=corrupt)
    with pytest.raises(WeightTransferError, match="does not exist"):
        nnzoo.build("mlp_small", "torch", weights=tmp_path / "missing.pt")
    with pytest.raises(WeightTransferError, match="cannot tell the format"):
        nnzoo.build("mlp_small", "torch", weights=tmp_path / "w.npz")
    other = save_weights(nnzoo.build("mlp_784", "torch"), tmp_path / "other.pt")
    with pytest.raises(WeightTransferError, match="missing|unexpected|shape"):
        nnzoo.build("mlp_small", "keras", weights=other)
    h5 = save_weights(nnzoo.build("mlp_784", "keras"), tmp_path / "other.weights.h5")
    with pytest.raises(WeightTransferError, match="cannot load"):
        nnzoo.build("mlp_small", "torch", weights=h5)


@pytest.mark.keras
@pytest.mark.parametrize("name", ["mlp_784", "cnn_small", "cnn_small_gap"])
def test_one_training_step_moves_batch_norm_statistics_equally(name: str) -> None:
    """PyTorch momentum 0.1 == Keras momentum 0.9, and both use the unbiased variance."""
    import torch

    spec = nnzoo.get_spec(name, dropout=0.0)
    torch_model = nnzoo.build(spec, "torch", seed=0)
    keras_model = nnzoo.convert(torch_model, "keras")
    x = spec.example_input(batch=4, seed=1)
    torch_model.train()
    torch_model(torch.from_numpy(x))
    from nnzoo.layout import to_keras

    keras_model(to_keras(x, spec.input_kind), training=True)
    a, b = state_dict(torch_model), state_dict(keras_model)
    stats = [k for k in a if k.endswith(("running_mean", "running_var"))]
    assert stats
    for key in stats:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)
    fresh = state_dict(nnzoo.build(spec, "torch", seed=0))
    assert any(not np.allclose(a[k], fresh[k]) for k in stats)  # the step did move them


@pytest.mark.keras
def test_a_transfer_and_its_check_hold_no_whole_copy_of_the_weights() -> None:
    """PyTorch -> Keras and the bit-exact comparison read PyTorch's weights as views, one key at
    a time: the NumPy memory they hold for a while stays near one layer's, not the model's
    (numeric parity on ViT-L/16 in float64 went 13.3 -> 8.3 GB with this). Counted with
    tracemalloc, which sees NumPy's allocations: what is still allocated after the transfer is
    the Keras variables' own storage (TensorFlow keeps the array it was given), not a copy."""
    import tracemalloc

    from nnzoo.conversion import transfer_weights
    from nnzoo.parity import _same_weights

    spec = nnzoo.get_spec("mlp_small", input_size=256, hidden_sizes=(256,) * 16, norm="batch")
    torch_model = nnzoo.build(spec, "torch", seed=0)
    keras_model = nnzoo.build(spec, "keras", seed=1)
    total = sum(v.nbytes for v in state_dict(torch_model).values())
    layer = 256 * 256 * 4
    assert total > 15 * layer
    transient = {}
    tracemalloc.start()
    try:
        for what, step in (("transfer", lambda: transfer_weights(torch_model, keras_model)),
                           ("check", lambda: _same_weights(torch_model, keras_model))):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            assert step() in (None, True), what
            after, peak = tracemalloc.get_traced_memory()
            transient[what] = peak - max(before, after)
    finally:
        tracemalloc.stop()
    assert all(n < 4 * layer for n in transient.values()), (transient, total)
