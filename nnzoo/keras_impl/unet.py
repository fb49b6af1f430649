"""U-Net in Keras; `nnzoo/torch_impl/unet.py` is the same network, layer for layer.

NHWC throughout, so the output is (N, H, W, num_classes); the parity check maps it to NCHW.
Two framework details are pinned down here:
- `Conv2DTranspose(k=2, s=2, "valid")` tiles each input pixel into a 2x2 block exactly like
  `nn.ConvTranspose2d(k=2, s=2)`; only the kernel layout differs (Keras (kh, kw, out, in),
  PyTorch (in, out, kh, kw)), which the converter's Conv2DTranspose rule handles.
- `UpSampling2D(interpolation="bilinear")` resizes with half-pixel centres, which is PyTorch's
  `Upsample(mode="bilinear", align_corners=False)` (checked numerically in tests/test_unet.py).
"""

from __future__ import annotations

from typing import Any

from keras import layers

from nnzoo.keras_impl.layers import ZooModel, activation, conv2d, model_input, norm, pool2d
from nnzoo.specs.unet import UNetSpec


def double_conv(spec: UNetSpec, x: Any, c_out: int, *, pool: bool = False, name: str) -> Any:
    """[max-pool 2x2] -> (3x3 conv, same padding -> norm -> act) twice."""
    if pool:
        x = pool2d(x, "max", 2, 2, name=f"{name}-pool")
    for n in (1, 2):
        x = conv2d(x, c_out, 3, stride=1, padding=1, bias=spec.block_bias, name=f"{name}-conv{n}")
        if spec.norm != "none":
            x = norm(spec, spec.norm, name=f"{name}-norm{n}")(x)
        x = activation(spec.activation, name=f"{name}-act{n}")(x)
    return x


def up(spec: UNetSpec, x: Any, skip: Any, *, name: str) -> Any:
    """Up-sample x2 halving the channels, concatenate [skip, up], double conv."""
    half = x.shape[-1] // 2
    if spec.upsample == "transpose":
        x = layers.Conv2DTranspose(half, 2, strides=2, padding="valid", use_bias=True,
                                   name=f"{name}-up")(x)
    else:
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}-resize")(x)
        x = conv2d(x, half, 3, stride=1, padding=1, bias=True, name=f"{name}-up")
    x = layers.Concatenate(axis=-1, name=f"{name}-cat")([skip, x])
    return double_conv(spec, x, half, name=f"{name}-block")


def graph(spec: UNetSpec) -> tuple[Any, Any]:
    # Height and width stay free; ZooModel.__call__ checks they are multiples of 2**depth.
    inputs = model_input((None, None, spec.in_channels), name="input")
    x = inputs
    skips = []
    for i, c in enumerate(spec.widths()):
        x = double_conv(spec, x, c, pool=i > 0, name=f"encoder-{i}")
        skips.append(x)
    skips.pop()  # the bottleneck's output is x itself
    for j in range(spec.depth):
        x = up(spec, x, skips.pop(), name=f"decoder-{j}")
    x = layers.Conv2D(spec.num_classes, 1, use_bias=True, name="head")(x)
    return inputs, x


def build(spec: UNetSpec) -> ZooModel:
    return ZooModel(spec)
