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


def conv(spec: ResNetSpec, x: Any, c_out: int, *, kernel: int, stride: int = 1, groups: int = 1,
         name: str) -> Any:
    """A convolution padded like torchvision's (kernel // 2 on every side), bias from the spec."""
    return conv2d(x, c_out, kernel, stride=stride, padding=kernel // 2, bias=spec.conv_bias,
                  groups=groups, name=name)


def downsample(spec: ResNetSpec, x: Any, c_out: int, *, stride: int, name: str) -> Any:
    """The shortcut: the projection (1x1 conv + BN, `<name>.0`, `<name>.1`) when the stride or
    the width changes, else `x` itself (the identity)."""
    if stride == 1 and x.shape[-1] == c_out:
        return x
    x = conv(spec, x, c_out, kernel=1, stride=stride, name=f"{name}-0")
    return norm(spec, "batch", name=f"{name}-1")(x)


def residual(x: Any, skip: Any, *, name: str) -> Any:
    """x + skip, then ReLU; the ReLU carries the block's name (its output is the block's)."""
    x = layers.Add(name=f"{name}-add")([x, skip])
    return activation("relu", name=name)(x)


def basic_block(spec: ResNetSpec, x: Any, width: int, *, stride: int, name: str) -> Any:
    """3x3 -> 3x3, plus the shortcut; used by ResNet-18/34."""
    x_in = x
    x = conv(spec, x, width, kernel=3, stride=stride, name=f"{name}-conv1")
    x = norm(spec, "batch", name=f"{name}-bn1")(x)
    x = activation("relu", name=f"{name}-relu1")(x)
    x = conv(spec, x, width, kernel=3, name=f"{name}-conv2")
    x = norm(spec, "batch", name=f"{name}-bn2")(x)
    skip = downsample(spec, x_in, width, stride=stride, name=f"{name}-downsample")
    return residual(x, skip, name=name)


def bottleneck(spec: ResNetSpec, x: Any, width: int, *, stride: int, name: str) -> Any:
    """1x1 reduce -> grouped 3x3 (carrying the stride: v1.5) -> 1x1 expand, plus the shortcut."""
    inner, c_out = spec.inner_width(width), width * spec.expansion
    x_in = x
    x = conv(spec, x, inner, kernel=1, name=f"{name}-conv1")
    x = norm(spec, "batch", name=f"{name}-bn1")(x)
    x = activation("relu", name=f"{name}-relu1")(x)
    x = conv(spec, x, inner, kernel=3, stride=stride, groups=spec.groups, name=f"{name}-conv2")
    x = norm(spec, "batch", name=f"{name}-bn2")(x)
    x = activation("relu", name=f"{name}-relu2")(x)
    x = conv(spec, x, c_out, kernel=1, name=f"{name}-conv3")
    x = norm(spec, "batch", name=f"{name}-bn3")(x)
    skip = downsample(spec, x_in, c_out, stride=stride, name=f"{name}-downsample")
    return residual(x, skip, name=name)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck}


def stage(spec: ResNetSpec, x: Any, index: int, *, name: str) -> Any:
    """`layer{index+1}`: its first block changes stride and width, the rest keep them."""
    block, width = BLOCKS[spec.block], spec.widths[index]
    for j in range(spec.layers[index]):
        stride = spec.stage_stride(index) if j == 0 else 1
        x = block(spec, x, width, stride=stride, name=f"{name}-{j}")
    return x


def graph(spec: ResNetSpec) -> tuple[Any, Any]:
    inputs = model_input((None, None, spec.in_channels), name="input")
    if spec.stem == "imagenet":
        x = conv(spec, inputs, spec.stem_width, kernel=7, stride=2, name="conv1")
    else:
        x = conv(spec, inputs, spec.stem_width, kernel=3, stride=1, name="conv1")
    x = norm(spec, "batch", name="bn1")(x)
    x = activation("relu", name="relu")(x)
    if spec.stem == "imagenet":
        x = pool2d(x, "max", 3, 2, padding=1, name="maxpool")
    for i in range(len(spec.layers)):
        x = stage(spec, x, i, name=f"layer{i + 1}")
    # keepdims: PyTorch's avgpool returns (N, C, 1, 1) and flattens after, so the twins match.
    x = layers.GlobalAveragePooling2D(keepdims=True, name="avgpool")(x)
    x = layers.Flatten(name="avgpool-flatten")(x)
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name="fc")(x)
    return inputs, x


def build(spec: ResNetSpec) -> ZooModel:
    return ZooModel(spec)
