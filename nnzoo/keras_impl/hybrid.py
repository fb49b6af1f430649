"""Hybrid CNN + RNN + attention models in Keras; `nnzoo/torch_impl/hybrid.py` is the same network.

Steps come out in PyTorch's order: a column is the NHWC map's (H', C) slice turned to (C, H')
before it is flattened (PyTorch flattens its (C, H') column channel-major); positions are the
NHWC grid reshaped row-major, as in `vit.py`. The recurrent layers are the recurrent family's
(`RecurrentLayer`, linked to `lstm.weight_ih_l0` and the rest), the blocks and the position
table the ViT's.
"""

from __future__ import annotations

from typing import Any

from keras import layers

from nnzoo.keras_impl.attention import PositionEmbedding, encoder_block
from nnzoo.keras_impl.cnn import stage
from nnzoo.keras_impl.layers import ZooModel, model_input
from nnzoo.keras_impl.recurrent import RecurrentLayer
from nnzoo.specs.hybrid import HybridSpec


def encoder(spec: HybridSpec, x: Any, *, name: str) -> Any:
    """[Add the position table], the pre-norm transformer blocks, a final layer norm."""
    if spec.positions:
        x = PositionEmbedding(spec.steps, name=f"{name}-pos_embedding")(x)
    for i in range(spec.attention_layers):
        x = encoder_block(
            x, spec.width, spec.num_heads, spec.mlp_dim, activation=spec.mlp_activation,
            dropout=spec.dropout, attention_dropout=spec.attention_dropout, ln_eps=spec.ln_eps,
            norm_first=True, name=f"{name}-layers-encoder_layer_{i}",
        )
    return layers.LayerNormalization(epsilon=spec.ln_eps, name=f"{name}-ln")(x)


def graph(spec: HybridSpec) -> tuple[Any, Any]:
    inputs = model_input((*spec.image_size, spec.in_channels), name="input")
    x = inputs
    for i, st in enumerate(spec.stages):
        x = stage(spec, x, st, name=f"features-{i}")
    if spec.sequence == "columns":  # (N, H', W', C) -> (N, W', C, H') -> (N, W', C * H')
        x = layers.Permute((2, 3, 1), name="steps-columns")(x)
    x = layers.Reshape((spec.steps, spec.step_width), name="steps")(x)
    if spec.proj_dim:
        x = layers.Dense(spec.proj_dim, name="proj")(x)
    for i in range(spec.num_layers if spec.rnn != "none" else 0):
        if i and spec.dropout:  # PyTorch's `dropout`: on every layer's outputs but the last
            x = layers.Dropout(spec.dropout, name=f"{spec.rnn}-l{i - 1}-drop")(x)
        x, _ = RecurrentLayer(spec.rnn, spec.hidden_size, i, spec.bidirectional,
                              name=f"{spec.rnn}-l{i}")(x)
    if spec.attention_layers:
        x = encoder(spec, x, name="encoder")
    if spec.output == "pooled":
        x = layers.GlobalAveragePooling1D(name="pool")(x)
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name="head")(x)
    return inputs, x


def build(spec: HybridSpec) -> ZooModel:
    return ZooModel(spec)
