"""MobileNetV2/V3 in Keras (NHWC); `nnzoo/torch_impl/mobilenet.py` is the same network, block for
block.

Layers are named after their PyTorch twins (`features-0-0`, `features-4-block-2-fc1`). Depthwise
convolutions are Keras's own `DepthwiseConv2D` (its fast kernel, not a grouped `Conv2D`), padded
symmetrically as PyTorch pads: Keras's `"same"` would pad a stride-2 layer bottom/right only.
A residual block's add carries the block's name (`features-2`): its output is the block's, as
the PyTorch module of that name returns. `conv_norm_act`, `squeeze_excitation` and
`block_output` are EfficientNet's pieces too (`nnzoo/keras_impl/efficientnet.py`).
"""

from __future__ import annotations

from typing import Any

from keras import layers

from nnzoo.keras_impl.layers import ZooModel, activation, conv2d, conv_padding, model_input, norm
from nnzoo.specs.base import Spec
from nnzoo.specs.mobilenet import MBBlock, MobileNetSpec


def conv_norm_act(spec: Spec, x: Any, c_out: int, *, kernel: int, stride: int = 1,
                  groups: int = 1, act: str | None, name: str) -> Any:
    """PyTorch's `Conv2dNormActivation`: conv (no bias, padding (k - 1) / 2; depthwise when
    `groups` is the width), batch norm, and the activation (none: a linear projection)."""
    pad = (kernel - 1) // 2
    if groups > 1:  # every use here is depthwise: groups == input width == output width
        x, mode = conv_padding(x, kernel, stride, pad, name=f"{name}-0")
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding=mode, use_bias=False,
                                   name=f"{name}-0")(x)
    else:
        x = conv2d(x, c_out, kernel, stride=stride, padding=pad, bias=False, name=f"{name}-0")
    x = norm(spec, "batch", name=f"{name}-1")(x)
    if act is not None:
        x = activation(act, name=f"{name}-2")(x)
    return x


def squeeze_excitation(x: Any, squeeze: int, *, act: str, gate: str, name: str) -> Any:
    """Scale each channel by a gate computed from the pooled map: pool, 1x1 conv to `squeeze`,
    `act`, 1x1 conv back, `gate`."""
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}-avgpool")(x)
    s = layers.Conv2D(squeeze, 1, use_bias=True, name=f"{name}-fc1")(s)
    s = activation(act, name=f"{name}-activation")(s)
    s = layers.Conv2D(x.shape[-1], 1, use_bias=True, name=f"{name}-fc2")(s)
    s = activation(gate, name=f"{name}-scale_activation")(s)
    return layers.Multiply(name=name)([x, s])


def block_output(x_in: Any, y: Any, *, residual: bool, name: str) -> Any:
    """The block's output: y plus the input when the block keeps its size."""
    return layers.Add(name=name)([x_in, y]) if residual else y


def mobile_block(spec: MobileNetSpec, x: Any, b: MBBlock, *, name: str) -> Any:
    """One `MBBlock` in torchvision's V2 or V3 layout."""
    c_in = x.shape[-1]
    inner = f"{name}-conv" if spec.version == "v2" else f"{name}-block"
    k, y = 0, x
    if b.expanded != c_in:
        y = conv_norm_act(spec, y, b.expanded, kernel=1, act=b.activation, name=f"{inner}-{k}")
        k += 1
    y = conv_norm_act(spec, y, b.expanded, kernel=b.kernel, stride=b.stride, groups=b.expanded,
                      act=b.activation, name=f"{inner}-{k}")
    k += 1
    if b.se:
        y = squeeze_excitation(y, spec.squeeze_width(b), act="relu", gate="hardsigmoid",
                               name=f"{inner}-{k}")
        k += 1
    if spec.version == "v2":  # a bare projection: conv, then norm, as two entries
        y = conv2d(y, b.channels, 1, bias=False, name=f"{inner}-{k}")
        y = norm(spec, "batch", name=f"{inner}-{k + 1}")(y)
    else:
        y = conv_norm_act(spec, y, b.channels, kernel=1, act=None, name=f"{inner}-{k}")
    return block_output(x, y, residual=b.stride == 1 and c_in == b.channels, name=name)


def graph(spec: MobileNetSpec) -> tuple[Any, Any]:
    inputs = model_input((None, None, spec.in_channels), name="input")
    x = conv_norm_act(spec, inputs, spec.stem_width, kernel=3, stride=2, act=spec.stem_activation,
                      name="features-0")
    for i, b in enumerate(spec.blocks):
        x = mobile_block(spec, x, b, name=f"features-{i + 1}")
    x = conv_norm_act(spec, x, spec.last_width, kernel=1, act=spec.last_activation,
                      name=f"features-{len(spec.blocks) + 1}")
    # keepdims: PyTorch's avgpool returns (N, C, 1, 1) and flattens after, so the twins match.
    x = layers.GlobalAveragePooling2D(keepdims=True, name="avgpool")(x)
    x = layers.Flatten(name="avgpool-flatten")(x)
    k = 0
    if spec.hidden_width:  # V3: dense -> activation -> dropout -> dense
        x = layers.Dense(spec.hidden_width, name="classifier-0")(x)
        x = activation(spec.last_activation, name="classifier-1")(x)
        k = 2
    x = layers.Dropout(spec.dropout, name=f"classifier-{k}")(x)
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name=f"classifier-{k + 1}")(x)
    return inputs, x


def build(spec: MobileNetSpec) -> ZooModel:
    return ZooModel(spec)
