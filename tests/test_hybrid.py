"""Hybrid CNN + RNN + attention models: what the shared suites do not reach.

The family's smallest model (conv_transformer) is the one the per-family suites train, export
and thread; the CRNN's per-step head and its loss are checked here: the order of the steps, the
labels they take, and 20 training steps in both frameworks.
"""

from __future__ import annotations

import numpy as np
import pytest

import nnzoo
from nnzoo.errors import LabelError, SpecError
from nnzoo.specs.training import check_batch, loss_spec

torch = pytest.importorskip("torch")

#: The CRNN's layers at a size that trains in seconds: one conv stage, a projection, a
#: bidirectional 2-layer LSTM, 4 columns of 8 features, per-column logits.
SMALL_CRNN = {"stages": ({"channels": 4},), "image_size": (4, 8), "proj_dim": 6,
              "hidden_size": 5, "num_classes": 7}


def test_columns_are_steps_left_to_right_channel_major() -> None:
    """Step j is column j of the last map; its features are (channel, row) in that order."""
    model = nnzoo.build("crnn", "torch")
    c, h, w = 3, 2, 5
    fmap = torch.arange(c * h * w, dtype=torch.float32).reshape(1, c, h, w)
    steps = model.steps(fmap)
    assert steps.shape == (1, w, c * h)
    for j in range(w):
        assert steps[0, j].tolist() == fmap[0, :, :, j].reshape(-1).tolist()


def test_patches_are_steps_row_by_row() -> None:
    model = nnzoo.build("conv_transformer", "torch")
    fmap = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    steps = model.steps(fmap)
    assert steps.shape == (1, 12, 2)
    assert steps[0, 5].tolist() == fmap[0, :, 1, 1].tolist()  # row 1, column 1


@pytest.mark.parametrize(("name", "shape"), [("crnn", (2, 16, 37)), ("conv_transformer", (2, 10))])
def test_output_shapes_follow_the_head(name: str, shape: tuple[int, ...]) -> None:
    spec = nnzoo.get_spec(name)
    assert spec.output_shape(2) == shape
    assert spec.replace(num_classes=0).output_shape(2) == (*shape[:-1], spec.width)


def test_per_step_logits_take_per_step_labels() -> None:
    spec = nnzoo.get_spec("crnn").replace(**SMALL_CRNN)
    loss = loss_spec(None, spec)
    assert loss.kind == "step_cross_entropy"
    x = spec.example_input(3)
    check_batch(spec, loss, x, np.zeros((3, spec.steps), dtype=np.int64))
    with pytest.raises(LabelError, match=r"shape \(3, 4\) \(class ids per step"):
        check_batch(spec, loss, x, np.zeros((3,), dtype=np.int64))
    with pytest.raises(SpecError, match="per-step logits.*use 'step_cross_entropy'"):
        loss_spec("cross_entropy", spec)
    with pytest.raises(SpecError, match="needs per-step logits"):
        loss_spec("step_cross_entropy", nnzoo.get_spec("conv_transformer"))


@pytest.mark.parametrize(("overrides", "field"), [
    ({"rnn": "none"}, "rnn"),  # the CRNN without its LSTM has no sequence model left
    ({"positions": True}, "positions"),
    ({"rnn": "none", "attention_layers": 1, "num_heads": 3}, "num_heads"),  # 256 wide
    ({"attention_layers": 1, "image_size": (32, 8)}, "image_size"),  # one column
    ({"proj_dim": -1}, "proj_dim"),
])
def test_bad_hybrid_specs_name_their_field(overrides: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        nnzoo.get_spec("crnn").replace(**overrides)
    assert info.value.field == field


@pytest.mark.keras
def test_crnn_trains_the_same_step_by_step() -> None:
    """20 float64 AdamW steps of per-step cross-entropy: the losses and every weight (the batch
    norm's statistics too) agree within the parity bound after each step."""
    from nnzoo.parity import ATOL

    spec = nnzoo.get_spec("crnn").replace(**SMALL_CRNN)
    result = nnzoo.train_parity(spec, steps=20, optimizer="adamw", batch=4, progress=False)
    assert result.ok, str(result)
    assert result.loss.kind == "step_cross_entropy"
    losses, _ = result.losses
    assert losses[-1] < losses[0]
    assert max(result.weight_diffs) <= ATOL * max(1.0, result.steps[-1].weight_scale)
