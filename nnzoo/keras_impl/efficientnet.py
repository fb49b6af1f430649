"""EfficientNet in Keras (NHWC); `nnzoo/torch_impl/efficientnet.py` is the same network, block
for block.

Layers are named after their PyTorch twins (`features-2-1-block-3-0`). The blocks are MobileNet's
(`nnzoo/keras_impl/mobilenet.py`), with SiLU, a sigmoid gate and stochastic depth: Keras's own
dropout with one mask value per example, as ConvNeXt's (`nnzoo/keras_impl/convnext.py`).
"""

from __future__ import annotations

from typing import Any

from keras import layers

from nnzoo.keras_impl.convnext import stochastic_depth
from nnzoo.keras_impl.layers import ZooModel, model_input
from nnzoo.keras_impl.mobilenet import block_output, conv_norm_act, squeeze_excitation
from nnzoo.specs.efficientnet import EfficientNetSpec, MBConvBlock


def mb_conv(spec: EfficientNetSpec, x: Any, b: MBConvBlock, *, name: str) -> Any:
    """MobileNet's inverted residual whose residual branch is dropped per example in training."""
    k, y = 0, x
    if b.expanded != b.c_in:
        y = conv_norm_act(spec, y, b.expanded, kernel=1, act="silu", name=f"{name}-block-0")
        k = 1
    y = conv_norm_act(spec, y, b.expanded, kernel=b.kernel, stride=b.stride, groups=b.expanded,
                      act="silu", name=f"{name}-block-{k}")
    y = squeeze_excitation(y, b.squeeze, act="silu", gate="sigmoid", name=f"{name}-block-{k + 1}")
    y = conv_norm_act(spec, y, b.c_out, kernel=1, act=None, name=f"{name}-block-{k + 2}")
    if b.residual:
        y = stochastic_depth(b.drop_rate, name=f"{name}-stochastic_depth")(y)
    return block_output(x, y, residual=b.residual, name=name)


def graph(spec: EfficientNetSpec) -> tuple[Any, Any]:
    inputs = model_input((None, None, spec.in_channels), name="input")
    x = conv_norm_act(spec, inputs, spec.width(spec.stem_width), kernel=3, stride=2, act="silu",
                      name="features-0")
    for b in spec.blocks():
        x = mb_conv(spec, x, b, name=f"features-{b.stage}-{b.index}")
    x = conv_norm_act(spec, x, spec.last_width, kernel=1, act="silu", name=f"features-{len(spec.stages) + 1}")
    # keepdims: PyTorch's avgpool returns (N, C, 1, 1) and flattens after, so the twins match.
    x = layers.GlobalAveragePooling2D(keepdims=True, name="avgpool")(x)
    x = layers.Flatten(name="avgpool-flatten")(x)
    x = layers.Dropout(spec.dropout, name="classifier-0")(x)
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name="classifier-1")(x)
    return inputs, x


def build(spec: EfficientNetSpec) -> ZooModel:
    return ZooModel(spec)
