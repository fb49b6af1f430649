"""ConvNeXt in Keras (NHWC); `nnzoo/torch_impl/convnext.py` is the same network, block for block.

Layers are named after their PyTorch twins (`features-1-0-block-0`, `classifier-2`). PyTorch's
block permutes to channels-last for its norm and MLP and back; Keras is channels-last throughout,
so those two permutes have no twin here, and its `LayerNorm2d` is a plain layer norm over the
last axis. The residual add carries the block's name (`features-1-0`): its output is the block's
output, as the PyTorch module of that name returns. Stochastic depth is Keras's own dropout with
one mask value per example (`noise_shape=(None, 1, 1, 1)`): drop the whole branch, scale the
kept ones by 1 / (1 - rate), exactly PyTorch's rule.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from nnzoo.keras_impl.attention import TorchParameter
from nnzoo.keras_impl.layers import ZooModel, activation, conv2d, model_input, norm, serializable
from nnzoo.specs.convnext import ConvNeXtSpec


@serializable
class LayerScale(TorchParameter):
    """Multiply each channel by a learned scale (PyTorch: the bare (C, 1, 1) `layer_scale`)."""

    def __init__(self, init_value: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.init_value = init_value

    def build(self, input_shape: Any) -> None:
        self.param = self.add_weight(shape=(input_shape[-1],), name="layer_scale",
                                     initializer=keras.initializers.Constant(self.init_value))

    def call(self, x: Any) -> Any:
        return x * ops.cast(self.param, x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "init_value": self.init_value}

    def torch_links(self) -> list[Any]:
        from nnzoo.links import Link, torch_path

        return [Link(self.torch_key or torch_path(self.name), (self.param,),
                     lambda vs: vs[0].reshape(-1, 1, 1), lambda t: [t.reshape(-1)])]


def layer_norm2d(spec: ConvNeXtSpec, *, name: str) -> layers.Layer:
    """PyTorch's `LayerNorm2d` (channels of NCHW) is a plain layer norm over NHWC's last axis."""
    return norm(spec, "layer", name=name)


def stochastic_depth(rate: float, *, name: str) -> layers.Layer:
    """Drop the whole residual branch of an example with probability `rate` (in training)."""
    return layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=name)


def cn_block(spec: ConvNeXtSpec, x: Any, drop_rate: float, *, name: str) -> Any:
    """depthwise 7x7 -> norm -> Dense(4C) -> GELU -> Dense(C), scaled per channel, plus x."""
    width = x.shape[-1]
    y = layers.DepthwiseConv2D(7, padding="same", use_bias=True, name=f"{name}-block-0")(x)
    y = norm(spec, "layer", name=f"{name}-block-2")(y)
    y = layers.Dense(4 * width, name=f"{name}-block-3")(y)
    y = activation("gelu", name=f"{name}-block-4")(y)
    y = layers.Dense(width, name=f"{name}-block-5")(y)
    y = LayerScale(spec.layer_scale, name=f"{name}-layer_scale")(y)
    y = stochastic_depth(drop_rate, name=f"{name}-stochastic_depth")(y)
    return layers.Add(name=name)([x, y])


def graph(spec: ConvNeXtSpec) -> tuple[Any, Any]:
    inputs = model_input((None, None, spec.in_channels), name="input")
    x = conv2d(inputs, spec.widths[0], 4, stride=4, bias=True, name="features-0-0")
    x = layer_norm2d(spec, name="features-0-1")(x)
    index = 0
    for i, depth in enumerate(spec.layers):
        for j in range(depth):
            x = cn_block(spec, x, spec.block_drop_rate(index), name=f"features-{1 + 2 * i}-{j}")
            index += 1
        if i + 1 < len(spec.widths):
            x = layer_norm2d(spec, name=f"features-{2 + 2 * i}-0")(x)
            x = conv2d(x, spec.widths[i + 1], 2, stride=2, bias=True, name=f"features-{2 + 2 * i}-1")
    # keepdims: PyTorch's avgpool returns (N, C, 1, 1), normalized and flattened after.
    x = layers.GlobalAveragePooling2D(keepdims=True, name="avgpool")(x)
    x = layer_norm2d(spec, name="classifier-0")(x)
    x = layers.Flatten(name="classifier-1")(x)
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name="classifier-2")(x)
    return inputs, x


def build(spec: ConvNeXtSpec) -> ZooModel:
    return ZooModel(spec)
