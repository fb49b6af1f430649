"""Plain CNN in Keras; `nnzoo/torch_impl/cnn.py` is the same network, layer for layer."""

from __future__ import annotations

from typing import Any

from keras import layers

from nnzoo.keras_impl.layers import (
    ZooModel,
    activation,
    conv2d,
    conv_padding,
    dense_block,
    model_input,
    norm,
    pool2d,
)
from nnzoo.specs.cnn import CNNSpec, ConvStage
from nnzoo.specs.hybrid import HybridSpec


def stage(spec: CNNSpec | HybridSpec, x: Any, st: ConvStage, *, name: str) -> Any:
    """conv (or dw + pw) -> norm/act in the spec's order -> pool (the hybrid family's front end too)."""
    k, s, p, bias = st.kernel, st.stride, st.padding, spec.conv_bias
    if st.separable:
        x, mode = conv_padding(x, k, s, p, name=f"{name}-dw")
        x = layers.DepthwiseConv2D(k, strides=s, padding=mode, use_bias=bias, name=f"{name}-dw")(x)
        x = layers.Conv2D(st.channels, 1, use_bias=bias, name=f"{name}-pw")(x)
    else:
        x = conv2d(x, st.channels, k, stride=s, padding=p, bias=bias, name=f"{name}-conv")
    post = ["norm", "act"] if spec.order == "conv-norm-act" else ["act", "norm"]
    for part in post:
        if part == "norm" and spec.norm != "none":
            x = norm(spec, spec.norm, name=f"{name}-norm")(x)
        elif part == "act":
            x = activation(spec.activation, name=f"{name}-act")(x)
    if st.pool != "none":
        x = pool2d(x, st.pool, st.pool_size, st.pool_stride, padding=st.pool_padding,
                   name=f"{name}-pool")
    return x


def graph(spec: CNNSpec) -> tuple[Any, Any]:
    size = (None, None) if spec.flexible_size else spec.image_size
    inputs = model_input((*size, spec.in_channels), name="input")
    x = inputs
    for i, st in enumerate(spec.stages):
        x = stage(spec, x, st, name=f"features-{i}")
    if spec.global_pool == "flatten":
        # Flatten in PyTorch's (C, H, W) order, so the next dense kernel is PyTorch's, transposed.
        x = layers.Permute((3, 1, 2), name="pool-nchw")(x)
        x = layers.Flatten(name="pool")(x)
    elif spec.global_pool == "avg":
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        x = layers.GlobalMaxPooling2D(name="pool")(x)
    for i, width in enumerate(spec.hidden_sizes):
        x = dense_block(x, width, act=spec.activation, dropout=spec.dropout, name=f"classifier-{i}")
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name="head")(x)
    return inputs, x


def build(spec: CNNSpec) -> ZooModel:
    return ZooModel(spec)
