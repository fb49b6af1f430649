"""MobileNetV2/V3 and EfficientNet: torchvision's state dicts load strictly (and on into Keras)
with equal outputs, stochastic depth's rates, compound scaling as spec data, the hard
activations' definitions, and the spec checks."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_loads_strictly, randomized

import nnzoo
from nnzoo.errors import SpecError

torch = pytest.importorskip("torch")

MOBILENETS = nnzoo.list_models(family="mobilenet")
EFFICIENTNETS = nnzoo.list_models(family="efficientnet")
#: The widest EfficientNets load in the heavy lane: three builds of up to 66M parameters each.
_HEAVY_LOADS = {"efficientnet_b5", "efficientnet_b6", "efficientnet_b7"}


def _loads(names: list[str]) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n in _HEAVY_LOADS else n for n in names]


@pytest.mark.parametrize("name", _loads(MOBILENETS + EFFICIENTNETS))
def test_loads_torchvision_state_dict_strictly(name: str, tv_models) -> None:
    """Every key and shape of torchvision's model, and its outputs from both nnzoo builds (on
    the `quick()` input: every layer runs, on a 32x32 image)."""
    assert_loads_strictly(randomized(getattr(tv_models, name)()).eval(), nnzoo.get_spec(name).quick())


@pytest.mark.parametrize("name", EFFICIENTNETS)
def test_stochastic_depth_rates_are_torchvisions(name: str, tv_models) -> None:
    """Block k of n drops with rate * k / n (not ConvNeXt's n - 1): the same rates, block for
    block, and batch norm's eps and momentum as torchvision sets them per variant."""
    with torch.device("meta"):
        ref = getattr(tv_models, name)()
        ours = nnzoo.build(name, "torch")
    theirs = [m.stochastic_depth.p for m in ref.modules()
              if type(m).__name__ == "MBConv" and m.use_res_connect]
    mine = [m.rate for m in ours.modules() if type(m).__name__ == "StochasticDepth"]
    assert mine == pytest.approx(theirs, abs=1e-12)
    assert len(mine) == sum(b.residual for b in ours.spec.blocks()) > 0
    norms = {(m.eps, m.momentum) for m in ref.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert norms == {(ours.spec.bn_eps, ours.spec.bn_momentum)}


def test_each_b_variant_is_b0_with_its_coefficients() -> None:
    """Compound scaling is spec data: B4 is B0 with width 1.4, depth 1.8 and 380x380 (and its
    dropout), and scaling by hand gives the registered network."""
    b4 = nnzoo.get_spec("efficientnet_b0", width_mult=1.4, depth_mult=1.8, image_size=(380, 380),
                        dropout=0.4)
    assert b4 == nnzoo.get_spec("efficientnet_b4")
    # 16 x 1.4 -> 24 and 24 x 1.4 -> 32 (rounded to 8); one block x 1.8 -> 2 blocks (rounded up)
    assert [b.c_out for b in b4.blocks()][:3] == [24, 24, 32]
    assert len(b4.blocks()) == sum(int(np.ceil(n * 1.8)) for n in (1, 2, 2, 3, 3, 4, 1))


@pytest.mark.parametrize("kind", ["hardswish", "hardsigmoid", "relu6"])
def test_hard_activations_have_one_definition(kind: str) -> None:
    """relu6(x + 3) / 6 (times x for hardswish) in both frameworks, kinks included: Keras 3's
    hard_sigmoid is PyTorch's (Keras 2's was clip(0.2 x + 0.5, 0, 1))."""
    from nnzoo.keras_impl.layers import activation as keras_activation
    from nnzoo.runtime import to_numpy
    from nnzoo.torch_impl.layers import activation as torch_activation

    x = np.concatenate([np.linspace(-8, 8, 161), [-3.0, 3.0, 0.0, 6.0]])
    gate = np.clip(x + 3, 0, 6) / 6
    want = {"hardswish": x * gate, "hardsigmoid": gate, "relu6": np.clip(x, 0, 6)}[kind]
    got_torch = torch_activation(kind)(torch.from_numpy(x)).numpy()
    got_keras = to_numpy(keras_activation(kind, name="act")(x))
    np.testing.assert_allclose(got_torch, want, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got_keras, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("name", "overrides", "field"), [
    ("mobilenet_v2", dict(blocks=({"channels": 8, "expanded": 8, "se": True},)), "blocks"),
    ("mobilenet_v3_small", dict(blocks=({"channels": 8, "expanded": 8, "kernel": 4},)), "blocks"),
    ("mobilenet_v3_small", dict(blocks=({"channels": 8, "expanded": 8, "stride": 3},)), "blocks"),
    ("mobilenet_v3_small", dict(blocks=()), "blocks"),
    ("mobilenet_v3_small", dict(hidden_width=-1), "hidden_width"),
    ("efficientnet_b0", dict(width_mult=0.0), "width_mult"),
    ("efficientnet_b0", dict(depth_mult=100.0), "depth_mult"),
    ("efficientnet_b0", dict(stochastic_depth=1.0), "stochastic_depth"),
    ("efficientnet_b0", dict(stages=({"expand_ratio": 0, "kernel": 3, "stride": 1,
                                      "channels": 8, "layers": 1},)), "stages"),
])
def test_bad_specs_name_the_field(name: str, overrides: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        nnzoo.get_spec(name, **overrides)
    assert info.value.field == field


def test_a_stage_row_missing_a_field_is_named() -> None:
    """A stage written by hand without its `layers` gets nnzoo's error naming `stages[0].layers`."""
    from nnzoo.errors import MissingFieldError

    with pytest.raises(MissingFieldError, match=r"stages\[0\]\.layers"):
        nnzoo.get_spec("efficientnet_b0", stages=[{"expand_ratio": 1, "kernel": 3, "stride": 1,
                                                   "channels": 16}])


def test_hard_sigmoid_gradient_is_exact_in_float64() -> None:
    """The gate's slope is 1/6 to the last bit in both builds. (`nn.Hardsigmoid`'s CPU backward
    uses a float32 1/6, 5e-9 off in float64, which parted float64 training within 3 steps.)"""
    from nnzoo.backends import keras_backend
    from nnzoo.keras_impl.layers import Act
    from nnzoo.torch_impl.layers import activation as torch_activation

    x = torch.linspace(-2.9, 2.9, 59, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(torch_activation("hardsigmoid")(x).sum(), x)
    assert torch.all(slope == 1 / 6)
    if keras_backend() != "tensorflow":
        return  # the Keras side's tape is TensorFlow's; this file runs in the TensorFlow pass
    import tensorflow as tf

    xt = tf.constant(x.detach().numpy())
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.reduce_sum(Act("hardsigmoid", dtype="float64", name="gate")(xt))
    assert np.all(tape.gradient(y, xt).numpy() == 1 / 6)
