"""Transformer encoder classifier in Keras; `nnzoo/torch_impl/transformer.py` is its twin.

Padding is an explicit boolean tensor computed from the token ids (`padding`), not Keras's
`Embedding(mask_zero=True)`: that would force the padding id to be 0 and let an implicit mask
travel (and be dropped or merged) through the graph. The same tensor masks attention keys and
mean pooling, as PyTorch's `key_padding_mask` does.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from nnzoo.keras_impl.attention import ClassToken, PositionEmbedding, encoder_block
from nnzoo.keras_impl.layers import ZooModel, first_token, masked_mean, model_input, serializable
from nnzoo.specs.transformer import TransformerSpec, sinusoidal_positions


@serializable
class TokenMask(layers.Layer):
    """Token ids -> (batch, [1 +] time) bool, True at real tokens (and at a leading class token)."""

    def __init__(self, padding_idx: int, class_token: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding_idx, self.class_token = padding_idx, class_token

    def call(self, tokens: Any) -> Any:
        real = ops.not_equal(tokens, self.padding_idx)
        if self.class_token:
            real = ops.concatenate([ops.ones_like(real[:, :1]), real], axis=1)
        return real

    def compute_output_spec(self, tokens: Any) -> Any:
        b, t = tokens.shape
        return keras.KerasTensor((b, None if t is None else t + int(self.class_token)), "bool")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding_idx": self.padding_idx,
                "class_token": self.class_token}


@serializable
class SinusoidalPositions(layers.Layer):
    """Add the fixed sinusoidal table to the first `time` positions (no weights)."""

    def __init__(self, length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.length = length

    def build(self, input_shape: Any) -> None:
        self.table = sinusoidal_positions(self.length, input_shape[-1])[None]
        self.built = True

    def call(self, x: Any) -> Any:
        return x + ops.convert_to_tensor(self.table, x.dtype)[:, : ops.shape(x)[1]]

    def compute_output_spec(self, x: Any) -> Any:
        # JAX cannot infer `min(length, time)` for a symbolic time axis: the output is the input's
        return keras.KerasTensor(x.shape, x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "length": self.length}


def graph(spec: TransformerSpec) -> tuple[Any, Any]:
    cls = spec.pooling == "cls"
    inputs = model_input((None,), dtype="int64", name="tokens")
    real = None
    if spec.masked:
        real = TokenMask(spec.padding_idx, cls, name="padding")(inputs)
    x = layers.Embedding(spec.vocab_size, spec.embed_dim, name="embedding")(inputs)
    if cls:
        x = ClassToken(name="class_token")(x)
    if spec.positional == "learned":
        x = PositionEmbedding(spec.positions, name="pos_embedding")(x)
    elif spec.positional == "sinusoidal":
        x = SinusoidalPositions(spec.positions, name="pos_embedding")(x)
    x = layers.Dropout(spec.dropout, name="dropout")(x)
    keys = None if real is None else ops.expand_dims(real, 1)  # (batch, 1, keys): every query
    for i in range(spec.depth):
        x = encoder_block(
            x, spec.embed_dim, spec.num_heads, spec.mlp_dim, activation=spec.activation,
            dropout=spec.dropout, attention_dropout=spec.attention_dropout, ln_eps=spec.ln_eps,
            norm_first=spec.norm_first, mask=keys, name=f"layers-{i}",
        )
    if spec.final_norm:
        x = layers.LayerNormalization(epsilon=spec.ln_eps, name="ln")(x)
    x = first_token(x, name="pool") if cls else masked_mean(x, real, name="pool")
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name="head")(x)
    return inputs, x


def build(spec: TransformerSpec) -> ZooModel:
    return ZooModel(spec)
