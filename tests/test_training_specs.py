"""Training specs and bad input: every refusal is nnzoo's own error, raised before any model is
built (no framework involved), and names what was wrong and what is allowed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import nnzoo
from nnzoo import backends
from nnzoo.errors import InputDtypeError, InputError, InputShapeError, LabelError, SpecError
from nnzoo.specs.training import (
    OPTIMIZERS,
    LossSpec,
    OptimizerSpec,
    ScheduleSpec,
    check_batch,
    default_loss,
    deterministic,
    loss_spec,
    optimizer_spec,
    stochastic_fields,
    synthetic_batch,
)


@pytest.fixture
def no_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model build fails the test: the error must come first."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built before the bad input was refused")
    monkeypatch.setattr(backends, "build_native", refuse)


@pytest.mark.parametrize(("value", "field", "match"), [
    ("adagrad", "optimizer", "one of 'sgd', 'adam', 'adamw'"),
    ("adamm", "optimizer", "did you mean 'adam'"),
    ({"lr": -0.1}, "lr", "must be > 0"),
    ({"lr": math.nan}, "lr", "finite"),
    ({"momentum": 1.0}, "momentum", r"\[0, 1\)"),
    ({"kind": "adam", "momentum": 0.9}, "momentum", "betas"),
    ({"nesterov": True}, "nesterov", "momentum > 0"),
    ({"kind": "adamw", "betas": (0.9, 1.0)}, "betas", r"\[0, 1\)"),
    ({"kind": "adam", "eps": 0.0}, "eps", r"\(0, 1\)"),
    ({"clip_norm": -1.0}, "clip_norm", "> 0"),
    ({"weight_decay": -1e-4}, "weight_decay", r"\[0, 1\)"),
    ({"schedule": {"kind": "linear"}}, "schedule.kind", "'constant', 'step', 'cosine'"),
    ({"schedule": {"kind": "step", "gamma": 0.0}}, "schedule.gamma", r"\(0, 1\]"),
    ({"learning_rate": 0.1}, "learning_rate", "valid fields"),
])
def test_bad_optimizers_are_refused_by_name(no_builds: None, value: object, field: str,
                                             match: str) -> None:
    with pytest.raises(SpecError, match=match) as info:
        nnzoo.train_parity("mlp_small", optimizer=value, progress=False)
    assert info.value.field == field


def test_bad_losses_and_arguments_are_refused(no_builds: None) -> None:
    with pytest.raises(SpecError, match="did you mean 'cross_entropy'"):
        nnzoo.train_parity("mlp_small", loss="cross_entropi", progress=False)
    with pytest.raises(SpecError, match="needs class logits.*use 'pixel_cross_entropy'"):
        nnzoo.train_parity("unet_small", loss="cross_entropy", progress=False)
    with pytest.raises(SpecError, match="needs per-pixel logits"):
        nnzoo.train_parity("mlp_small", loss="pixel_cross_entropy", progress=False)
    with pytest.raises(SpecError, match="needs class logits.*features"):
        nnzoo.train_parity("mlp_small", loss="cross_entropy", num_classes=0, progress=False)
    with pytest.raises(SpecError, match="'mean'"):
        nnzoo.train_parity("mlp_small", loss={"kind": "mse", "reduction": "sum"}, progress=False)
    for arg in ({"steps": 0}, {"batch": -1}, {"steps": 2.5}, {"dtype": "float16"}):
        with pytest.raises(SpecError):
            nnzoo.train_parity("mlp_small", progress=False, **arg)
    with pytest.raises(SpecError, match="total_steps.*rises again"):
        nnzoo.train_parity("mlp_small", steps=30, progress=False,
                           optimizer={"schedule": {"kind": "cosine", "total_steps": 20}})


def test_bad_data_is_refused_before_any_step(no_builds: None) -> None:
    x, y = synthetic_batch(nnzoo.get_spec("mlp_small"), LossSpec(), 8)

    def train(data: object, name: str = "mlp_small", **kw: object) -> None:
        nnzoo.train_parity(name, data=data, progress=False, **kw)

    with pytest.raises(LabelError, match=r"class ids in \[0, 10\).*from 0 to 10"):
        train((x, np.where(y == y[0], 10, y)))
    with pytest.raises(LabelError, match=r"class ids in \[0, 10\)"):
        train((x, y - 1 - y.max()))
    with pytest.raises(LabelError, match="integer class ids"):
        train((x, y.astype(np.float32)))
    with pytest.raises(LabelError, match=r"shape \(8,\)"):
        train((x, y[:4]))
    with pytest.raises(InputShapeError, match=r"\(batch, 32\)"):
        train((x[:, :16], y))
    with pytest.raises(InputDtypeError, match="floating-point"):
        train((x.astype(np.int64), y))
    with pytest.raises(InputError, match="pair"):
        train(x)
    with pytest.raises(InputError, match="NaN"):
        train((np.full_like(x, np.nan), y))
    with pytest.raises(LabelError, match="floating-point targets"):
        train((x, y), loss="mse")
    tokens = nnzoo.get_spec("gru")
    ids, labels = synthetic_batch(tokens, LossSpec(), 4)
    with pytest.raises(InputError, match=r"token ids must be in \[0, 1000\)"):
        train((ids + 1000, labels), name="gru")
    unet = nnzoo.get_spec("unet_small")
    images, masks = synthetic_batch(unet, default_loss(unet), 2)
    with pytest.raises(LabelError, match=r"\(2, 32, 32\)"):
        train((images, masks[:, :16]), name="unet_small")
    with pytest.raises(InputShapeError, match="divisible"):
        train((images[:, :, :20, :20], masks[:, :20, :20]), name="unet_small")


def test_specs_are_frozen_json_ready_and_validated() -> None:
    opt = optimizer_spec("sgd", lr=0.1, schedule={"kind": "cosine", "min_lr": 0.001})
    assert isinstance(opt.schedule, ScheduleSpec) and opt.momentum == 0.9
    assert OptimizerSpec(**json.loads(json.dumps(opt.to_dict()))).replace() == opt
    with pytest.raises(AttributeError):
        opt.lr = 1.0  # type: ignore[misc]
    assert optimizer_spec(OPTIMIZERS["adamw"]).weight_decay == 1e-2
    assert optimizer_spec({"kind": "adam"}).lr == 0.01  # a dict starts from the spec defaults
    assert OptimizerSpec(clip_norm=1).clip_norm == 1.0  # ints are read as floats
    with pytest.raises(SpecError, match="optimizer.lr=-1"):
        OptimizerSpec(lr=-1)


def test_schedules_follow_their_definitions() -> None:
    step = ScheduleSpec(kind="step", step_size=3, gamma=0.5)
    assert [step.lr(1.0, i, steps=9) for i in (0, 2, 3, 8)] == [1.0, 1.0, 0.5, 0.25]
    cosine = ScheduleSpec(kind="cosine", min_lr=0.1)
    assert cosine.lr(1.0, 0, steps=10) == 1.0
    assert cosine.lr(1.0, 5, steps=10) == pytest.approx(0.55)
    assert cosine.lr(1.0, 10, steps=10) == pytest.approx(0.1)
    assert ScheduleSpec().lr(0.3, 99, steps=100) == 0.3


def test_the_head_decides_the_default_loss() -> None:
    assert default_loss(nnzoo.get_spec("resnet18")).kind == "cross_entropy"
    assert default_loss(nnzoo.get_spec("unet_small")).kind == "pixel_cross_entropy"
    assert default_loss(nnzoo.get_spec("mlp_small", num_classes=0)).kind == "mse"
    assert loss_spec("mse", nnzoo.get_spec("unet_small")).kind == "mse"  # regression per pixel
    spec = nnzoo.get_spec("unet_small")
    x, y = synthetic_batch(spec, LossSpec(kind="mse"), 2)
    check_batch(spec, LossSpec(kind="mse"), x, y)
    assert y.shape == (2, 2, 32, 32) and y.dtype.kind == "f"


@pytest.mark.parametrize("name", nnzoo.list_models())
def test_deterministic_switches_off_every_stochastic_layer(name: str) -> None:
    """Every dropout-like field of every family is found, and with them at 0 no PyTorch build
    holds an active dropout or stochastic depth (a free build on the meta device: no weights are
    made)."""
    import torch

    from nnzoo.torch_impl.convnext import StochasticDepth

    spec = nnzoo.get_spec(name)

    def active(s: nnzoo.Spec) -> int:
        with torch.device("meta"):
            model = backends.build_native(s, "torch")
        return sum(1 for m in model.modules()
                   if (isinstance(m, torch.nn.Dropout) and m.p > 0)
                   or (isinstance(m, torch.nn.MultiheadAttention | torch.nn.RNNBase)
                       and m.dropout > 0)
                   or (isinstance(m, StochasticDepth) and m.rate > 0))

    assert active(deterministic(spec)) == 0
    if any(stochastic_fields(spec).values()):
        assert active(spec) > 0
    assert not any(stochastic_fields(deterministic(spec)).values())
