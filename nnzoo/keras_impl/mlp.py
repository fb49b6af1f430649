"""MLP in Keras; `nnzoo/torch_impl/mlp.py` is the same network, layer for layer."""

from __future__ import annotations

from typing import Any

from keras import layers

from nnzoo.keras_impl.layers import ZooModel, dense_block, model_input, norm
from nnzoo.specs.mlp import MLPSpec


def graph(spec: MLPSpec) -> tuple[Any, Any]:
    inputs = model_input((spec.input_size,), name="input")
    x = inputs
    for i, width in enumerate(spec.hidden_sizes):
        name = f"hidden-{i}"
        norm_layer = None if spec.norm == "none" else norm(spec, spec.norm, name=f"{name}-norm")
        x = dense_block(x, width, act=spec.activation, dropout=spec.dropout, bias=spec.bias,
                        norm_layer=norm_layer, name=name)
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name="head")(x)
    return inputs, x


def build(spec: MLPSpec) -> ZooModel:
    return ZooModel(spec)
