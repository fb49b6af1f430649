"""Vision Transformer in Keras; `nnzoo/torch_impl/vit.py` is the same network, layer for layer.

Patch tokens come out in the same order as PyTorch's: the NHWC patch grid (N, H/p, W/p, D)
reshaped to (N, H/p * W/p, D) is row-major over (row, column), exactly what torch's
`(N, D, H/p, W/p).flatten(2).transpose(1, 2)` gives. The class token and the position embeddings
are bare torch parameters (`class_token`, `encoder.pos_embedding`); their layers in
`nnzoo/keras_impl/attention.py` link to those keys.
"""

from __future__ import annotations

from typing import Any

from keras import layers

from nnzoo.keras_impl.attention import ClassToken, PositionEmbedding, encoder_block
from nnzoo.keras_impl.layers import ZooModel, first_token, model_input
from nnzoo.specs.vit import ViTSpec


def tokens(spec: ViTSpec, x: Any, *, name: str) -> Any:
    """(N, H, W, C) -> (N, H/p * W/p, D): patches in row-major order (top row first)."""
    d, p = spec.embed_dim, spec.patch_size
    x = layers.Conv2D(d, p, strides=p, padding="valid", use_bias=True, name=name)(x)
    gh, gw = spec.grid
    return layers.Reshape((gh * gw, d), name=f"{name}-flatten")(x)


def encoder(spec: ViTSpec, x: Any, *, name: str) -> Any:
    """Add position embeddings, dropout, the transformer blocks, a final layer norm."""
    x = PositionEmbedding(spec.seq_length, name=f"{name}-pos_embedding")(x)
    x = layers.Dropout(spec.dropout, name=f"{name}-dropout")(x)
    for i in range(spec.depth):
        x = encoder_block(
            x, spec.embed_dim, spec.num_heads, spec.mlp_dim, activation=spec.activation,
            dropout=spec.dropout, attention_dropout=spec.attention_dropout, ln_eps=spec.ln_eps,
            norm_first=True, name=f"{name}-layers-encoder_layer_{i}",
        )
    return layers.LayerNormalization(epsilon=spec.ln_eps, name=f"{name}-ln")(x)


def graph(spec: ViTSpec) -> tuple[Any, Any]:
    inputs = model_input((*spec.image_size, spec.in_channels), name="input")
    x = tokens(spec, inputs, name="conv_proj")
    if spec.class_token:
        x = ClassToken(name="class_token")(x)
    x = encoder(spec, x, name="encoder")
    if spec.class_token:
        x = first_token(x, name="pool")  # the class token's state, as in the text transformer
    else:
        x = layers.GlobalAveragePooling1D(name="pool")(x)
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name="heads-head")(x)
    return inputs, x


def build(spec: ViTSpec) -> ZooModel:
    return ZooModel(spec)
