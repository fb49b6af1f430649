"""MLP in Keras; `nnzoo/torch_impl/mlp.py` is the same network, layer for layer."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from nnzoo.keras_impl.layers import ZooModel, activation, norm
from nnzoo.specs.mlp import MLPSpec


def hidden_block(spec: MLPSpec, x: Any, width: int, name: str) -> Any:
    """fc -> norm -> act -> drop, with the PyTorch twin's module paths as layer names."""
    x = layers.Dense(width, use_bias=spec.bias, name=f"{name}.fc")(x)
    if spec.norm != "none":
        x = norm(spec, spec.norm, name=f"{name}.norm")(x)
    x = activation(spec.activation, name=f"{name}.act")(x)
    if spec.dropout:
        x = layers.Dropout(spec.dropout, name=f"{name}.drop")(x)
    return x


def graph(spec: MLPSpec) -> tuple[Any, Any]:
    inputs = keras.Input(shape=(spec.input_size,), name="input")
    x = inputs
    for i, width in enumerate(spec.hidden_sizes):
        x = hidden_block(spec, x, width, f"hidden.{i}")
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name="head")(x)
    return inputs, x


def build(spec: MLPSpec) -> ZooModel:
    return ZooModel(spec)
