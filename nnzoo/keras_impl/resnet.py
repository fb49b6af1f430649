"""ResNet in Keras (NHWC); `nnzoo/torch_impl/resnet.py` is the same network, block for block.

Layers are named after their PyTorch twins (`layer1.0.conv1`, `layer2.0.downsample.0`, `fc`).
PyTorch reuses one `relu` module per block; here each call is its own layer (`<block>.relu1`,
`<block>.relu2`), and the ReLU after the residual `<block>.add` carries the block's own name
(`layer1.0`): its output is the block's output, as the PyTorch module of that name returns.
Padding is explicit and symmetric (the stem's max-pool pads with -inf).
"""

from __future__ import annotations

from typing import Any

from keras import layers

from nnzoo.keras_impl.layers import ZooModel, activation, conv2d, model_input, norm, pool2d
from nnzoo.specs.resnet import ResNetSpec


def conv(spec: ResNetSpec, x: Any, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
         *, name: str) -> Any:
    """A convolution padded like torchvision's (kernel // 2 on every side), bias from the spec."""
    return conv2d(x, c_out, kernel, stride=stride, padding=kernel // 2, bias=spec.conv_bias,
                  groups=groups, name=name)


def shortcut(spec: ResNetSpec, x: Any, c_out: int, stride: int, name: str) -> Any:
    """Identity, or the projection (1x1 conv + BN) when the stride or the width changes."""
    if stride == 1 and x.shape[-1] == c_out:
        return x
    x = conv(spec, x, c_out, 1, stride, name=f"{name}-downsample-0")
    return norm(spec, "batch", name=f"{name}-downsample-1")(x)


def residual(x: Any, skip: Any, name: str) -> Any:
    x = layers.Add(name=f"{name}-add")([x, skip])
    return activation("relu", name=name)(x)


def basic_block(spec: ResNetSpec, x: Any, width: int, stride: int, name: str) -> Any:
    """3x3 -> 3x3, plus the shortcut; used by ResNet-18/34."""
    x_in = x
    x = conv(spec, x, width, 3, stride, name=f"{name}-conv1")
    x = norm(spec, "batch", name=f"{name}-bn1")(x)
    x = activation("relu", name=f"{name}-relu1")(x)
    x = conv(spec, x, width, 3, name=f"{name}-conv2")
    x = norm(spec, "batch", name=f"{name}-bn2")(x)
    return residual(x, shortcut(spec, x_in, width, stride, name), name)


def bottleneck(spec: ResNetSpec, x: Any, width: int, stride: int, name: str) -> Any:
    """1x1 reduce -> grouped 3x3 (carrying the stride: v1.5) -> 1x1 expand, plus the shortcut."""
    inner, c_out = spec.inner_width(width), width * spec.expansion
    x_in = x
    x = conv(spec, x, inner, 1, name=f"{name}-conv1")
    x = norm(spec, "batch", name=f"{name}-bn1")(x)
    x = activation("relu", name=f"{name}-relu1")(x)
    x = conv(spec, x, inner, 3, stride, groups=spec.groups, name=f"{name}-conv2")
    x = norm(spec, "batch", name=f"{name}-bn2")(x)
    x = activation("relu", name=f"{name}-relu2")(x)
    x = conv(spec, x, c_out, 1, name=f"{name}-conv3")
    x = norm(spec, "batch", name=f"{name}-bn3")(x)
    return residual(x, shortcut(spec, x_in, c_out, stride, name), name)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck}


def stage(spec: ResNetSpec, index: int, x: Any) -> Any:
    """`layer{index+1}`: its first block changes stride and width, the rest keep them."""
    block, width = BLOCKS[spec.block], spec.widths[index]
    for j in range(spec.layers[index]):
        stride = spec.stage_stride(index) if j == 0 else 1
        x = block(spec, x, width, stride, f"layer{index + 1}-{j}")
    return x


def graph(spec: ResNetSpec) -> tuple[Any, Any]:
    inputs = model_input((None, None, spec.in_channels), name="input")
    if spec.stem == "imagenet":
        x = conv(spec, inputs, spec.stem_width, 7, 2, name="conv1")
    else:
        x = conv(spec, inputs, spec.stem_width, 3, 1, name="conv1")
    x = norm(spec, "batch", name="bn1")(x)
    x = activation("relu", name="relu")(x)
    if spec.stem == "imagenet":
        x = pool2d(x, "max", 3, 2, 1, name="maxpool")
    for i in range(len(spec.layers)):
        x = stage(spec, i, x)
    # keepdims: PyTorch's avgpool returns (N, C, 1, 1) and flattens after, so the twins match.
    x = layers.GlobalAveragePooling2D(keepdims=True, name="avgpool")(x)
    x = layers.Flatten(name="avgpool-flatten")(x)
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name="fc")(x)
    return inputs, x


def build(spec: ResNetSpec) -> ZooModel:
    return ZooModel(spec)
