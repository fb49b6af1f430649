"""ConvNeXt: torchvision's state dicts load strictly (and on into Keras), stochastic depth's rule
and distribution, and the spec's size checks."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_loads_strictly, randomized

import nnzoo
from nnzoo.errors import SpecError
from nnzoo.runtime import run

torch = pytest.importorskip("torch")


def test_convnext_tiny_loads_torchvision_state_dict_strictly(tv_models):
    """Every key and shape of torchvision's convnext_tiny, and equal outputs in both builds."""
    assert_loads_strictly(randomized(tv_models.convnext_tiny()).eval(),
                          nnzoo.get_spec("convnext_tiny").quick())


@pytest.mark.parametrize("name", ["convnext_tiny", "convnext_small", "convnext_base"])
def test_stochastic_depth_rates_are_torchvisions(name: str, tv_models) -> None:
    """Block i of n drops with rate * i / (n - 1): the same rates, block for block."""
    with torch.device("meta"):
        ref = getattr(tv_models, name)()
        ours = nnzoo.build(name, "torch")
    theirs = [m.p for m in ref.modules() if type(m).__name__ == "StochasticDepth"]
    mine = [m.rate for m in ours.modules() if type(m).__name__ == "StochasticDepth"]
    assert mine == pytest.approx(theirs, abs=1e-12) and len(mine) == sum(ours.spec.layers)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_stochastic_depth_is_the_same_in_distribution(rate: float) -> None:
    """Both builds drop a whole example's branch with probability p (within 5 binomial standard
    deviations) and scale every kept value by exactly 1 / (1 - p)."""
    from nnzoo.keras_impl.convnext import stochastic_depth
    from nnzoo.runtime import to_numpy
    from nnzoo.torch_impl.convnext import StochasticDepth

    n = 20_000
    ones = np.ones((n, 2, 2, 3), dtype=np.float32)  # NHWC for Keras; the same count as NCHW
    outputs = {
        "torch": StochasticDepth(rate).train()(torch.from_numpy(ones.transpose(0, 3, 1, 2))).numpy(),
        "keras": to_numpy(stochastic_depth(rate, name="sd")(ones, training=True)),
    }
    sigma = np.sqrt(rate * (1 - rate) / n)
    for framework, y in outputs.items():
        rows = y.reshape(n, -1)
        dropped = np.all(rows == 0, axis=1)
        assert np.all(dropped | np.all(rows != 0, axis=1)), f"{framework}: a row partly dropped"
        assert abs(float(dropped.mean()) - rate) < 5 * sigma, (framework, dropped.mean())
        np.testing.assert_allclose(rows[~dropped], 1 / (1 - rate), rtol=1e-6, err_msg=framework)
    for framework, y in {"torch": StochasticDepth(rate).eval()(torch.ones(4, 3, 2, 2)).numpy(),
                         "keras": to_numpy(stochastic_depth(rate, name="sd")(ones[:4]))}.items():
        assert np.all(y == 1), f"{framework}: not the identity in inference"


@pytest.mark.parametrize(("overrides", "field"), [
    (dict(image_size=(16, 16)), "image_size"),  # four stages need 32x32
    (dict(widths=(8, 16)), "widths"),
    (dict(layers=()), "layers"),
    (dict(stochastic_depth=1.0), "stochastic_depth"),
    (dict(layer_scale=0.0), "layer_scale"),
])
def test_bad_specs_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        nnzoo.get_spec("convnext_tiny", **overrides)
    assert info.value.field == field


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_an_input_below_min_side_is_refused_by_name(backend: str) -> None:
    """Any size from 32 works for four stages; a smaller one gets nnzoo's error, not the
    framework's convolution error."""
    from nnzoo.errors import InputShapeError

    spec = nnzoo.get_spec("convnext_tiny", layers=(1, 1), widths=(8, 16))  # min_side 8
    model = nnzoo.build(spec.quick(), backend)
    assert run(model, spec.replace(image_size=(8, 13)).example_input(1)).shape == (1, 1000)
    with pytest.raises(InputShapeError, match=">= 8"):
        run(model, np.zeros((1, 3, 6, 8), dtype=np.float32))
