"""U-Net: output at the input's size in both backends, size checks, and the up-sampling twins."""

from __future__ import annotations

import numpy as np
import pytest

import nnzoo
from nnzoo.errors import InputShapeError, SpecError
from nnzoo.runtime import count_params, run

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")


def _pair(**overrides):
    spec = nnzoo.get_spec("unet_small", **overrides)
    return spec, nnzoo.build(spec, "torch", seed=0), nnzoo.build(spec, "keras", seed=0)


@pytest.mark.parametrize("upsample", ["transpose", "bilinear"])
def test_output_is_input_sized_in_both_backends(upsample):
    spec, tm, km = _pair(upsample=upsample, depth=2, base_width=8, num_classes=3)
    assert count_params(tm) == count_params(km)
    for h, w in [(4, 4), (8, 12), (20, 8)]:
        x = np.zeros((1, 3, h, w), np.float32)
        assert run(tm, x).shape == (1, 3, h, w)
        assert run(km, x).shape == (1, 3, h, w)  # mapped back from NHWC (1, h, w, 3)


def test_counts_of_registered_variants():
    # unet: 31,037,698 trainable (+ 11,776 batch-norm statistics), equal in both backends.
    for name, trainable in [("unet", 31_037_698), ("unet_small", 1_942_594)]:
        t = count_params(nnzoo.build(name, "torch"))
        k = count_params(nnzoo.build(name, "keras"))
        assert t == k and t.trainable == trainable


def test_bad_sizes():
    with pytest.raises(SpecError, match="image_size.*multiples of 2\\*\\*depth = 16"):
        nnzoo.get_spec("unet_small", image_size=(40, 48))
    with pytest.raises(SpecError, match="depth"):
        nnzoo.get_spec("unet_small", depth=0)
    spec, tm, km = _pair(depth=2, base_width=4)
    with pytest.raises(InputShapeError, match="divisible by 2\\*\\*depth = 4"):
        tm(torch.zeros(1, 3, 8, 6))
    with pytest.raises(InputShapeError, match="divisible by 2\\*\\*depth = 4"):
        km(np.zeros((1, 6, 8, 3), np.float32))
    with pytest.raises(InputShapeError, match="expects input of shape"):
        tm(torch.zeros(1, 4, 8, 8))  # wrong channel count


def test_conv_bias_follows_norm_unless_set():
    assert nnzoo.get_spec("unet").block_bias is False
    assert nnzoo.get_spec("unet", norm="none").block_bias is True
    assert nnzoo.get_spec("unet", conv_bias=True).block_bias is True


@pytest.mark.parametrize("upsample", ["transpose", "bilinear"])
def test_numeric_agreement_after_transfer(upsample):
    from nnzoo.conversion import transfer_weights

    spec, tm, km = _pair(upsample=upsample, depth=2, base_width=8)
    with torch.no_grad():  # non-trivial batch-norm statistics, so they are checked too
        for m in tm.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    transfer_weights(tm, km)
    x = spec.example_input(2)
    a, b = run(tm, x), run(km, x)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_bilinear_upsampling_uses_half_pixel_centres_in_both():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    up = torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    a = up(torch.from_numpy(x)).numpy()
    k = keras.layers.UpSampling2D(2, interpolation="bilinear")
    b = np.moveaxis(np.asarray(k(np.moveaxis(x, 1, -1))), -1, 1)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_transposed_conv_kernel_layouts_agree():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 3, 5)).astype(np.float32)
    w = rng.standard_normal((4, 6, 2, 2)).astype(np.float32)  # PyTorch (in, out, kh, kw)
    a = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=2)
    k = keras.layers.Conv2DTranspose(6, 2, strides=2, padding="valid", use_bias=False)
    k.build((None, 3, 5, 4))
    k.kernel.assign(w.transpose(2, 3, 1, 0))  # Keras (kh, kw, out, in)
    b = np.moveaxis(np.asarray(k(np.moveaxis(x, 1, -1))), -1, 1)
    np.testing.assert_allclose(a.numpy(), b, atol=1e-5)
