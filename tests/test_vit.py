"""ViT: torchvision's counts and state dicts, token order, pooling options, and size checks."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_loads_strictly, randomized

import nnzoo
from nnzoo.errors import InputShapeError, SpecError
from nnzoo.runtime import count_params, run

torch = pytest.importorskip("torch")

#: torchvision's published parameter counts (224x224, 1000 classes).
TORCHVISION = {
    "vit_b_16": 86_567_656,
    "vit_b_32": 88_224_232,
    "vit_l_16": 304_326_632,
    "vit_l_32": 306_535_400,
    "vit_h_14": 632_045_800,
}
#: DeiT-tiny and DeiT-small have these sizes (and counts).
SMALL = {"vit_ti_16": 5_717_416, "vit_s_16": 22_050_664}


def _small(**overrides):
    fields = dict(image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_dim=64,
                  num_classes=10)
    return nnzoo.get_spec("vit_ti_16", **{**fields, **overrides})


# Both backends' counts against these figures are checked once, in the parity suite, from the
# counts recorded in the variant table.
@pytest.mark.parametrize("name", ["vit_b_16", "vit_b_32"])
def test_keras_counts_at_small_image_size(name):
    """At image_size = 2 patches the position table shrinks by (seq_224 - 5) rows of width D."""
    spec = nnzoo.get_spec(name)
    small = spec.replace(image_size=2 * spec.patch_size)
    model = nnzoo.build(small, "keras")
    fewer = (spec.seq_length - small.seq_length) * spec.embed_dim
    assert count_params(model).trainable == TORCHVISION[name] - fewer


def test_small_vit_loads_torchvision_state_dict_strictly(tv_models):
    assert_loads_strictly(randomized(tv_models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64,
        num_classes=10)).eval(), _small())


@pytest.mark.slow
def test_vit_b_16_loads_torchvision_state_dict_strictly(tv_models):
    ref = randomized(tv_models.vit_b_16()).eval()
    ours = nnzoo.build("vit_b_16", "torch")
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = ours.spec.example_input(1)
    want = ref(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(run(ours, x), want, rtol=0, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("overrides", [
    dict(image_size=(16, 24)),  # a non-square grid: token order must agree between backends
    dict(class_token=False),  # mean of the tokens after the final layer norm
    dict(num_classes=0, class_token=False, dropout=0.1, attention_dropout=0.1),
])
def test_torch_and_keras_agree_after_transfer(overrides):
    from nnzoo.conversion import transfer_weights

    spec = _small(**overrides)
    tm = randomized(nnzoo.build(spec, "torch"))
    km = nnzoo.build(spec, "keras")
    assert count_params(tm) == count_params(km)
    transfer_weights(tm, km)
    x = spec.example_input(2)
    a, b = run(tm, x), run(km, x)
    assert a.shape == b.shape == spec.output_shape(2)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_pooling_options_change_the_keys():
    keys = set(nnzoo.build(_small(class_token=False, num_classes=0), "torch").state_dict())
    assert "class_token" not in keys and not any(k.startswith("heads.") for k in keys)
    assert nnzoo.build(_small(), "torch").encoder.pos_embedding.shape == (1, 17, 32)
    assert nnzoo.build(_small(class_token=False), "torch").encoder.pos_embedding.shape == (1, 16, 32)


def test_bad_sizes():
    with pytest.raises(SpecError, match="image_size.*multiples of patch_size=16"):
        nnzoo.get_spec("vit_b_16", image_size=200)
    with pytest.raises(SpecError, match="num_heads=5 is invalid: must divide embed_dim=768"):
        nnzoo.get_spec("vit_b_16", num_heads=5)
    spec = _small()
    with pytest.raises(InputShapeError, match=r"expects input of shape \(batch, 3, 32, 32\)"):
        nnzoo.build(spec, "torch")(torch.zeros(1, 3, 40, 40))
    with pytest.raises(InputShapeError, match=r"expects input of shape \(batch, 32, 32, 3\)"):
        nnzoo.build(spec, "keras")(np.zeros((1, 40, 40, 3), np.float32))
