"""Transformer encoder pieces shared by the text `transformer` and `vit` Keras builds.

The twin of `nnzoo/torch_impl/attention.py`; layers are named after torchvision's module paths:

    <block>.ln_1            LayerNormalization(epsilon=ln_eps)
    <block>.self_attention  SelfAttention (keras MultiHeadAttention, links to torch's packed in_proj)
    <block>.dropout         Dropout on the attention output
    <block>.add_1           (Keras-only) residual sum
    <block>.ln_2            LayerNormalization(epsilon=ln_eps)
    <block>.mlp.0 Dense  .mlp.1 activation  .mlp.2 Dropout  .mlp.3 Dense  .mlp.4 Dropout
    <block>.add_2           (Keras-only) residual sum

Keras's `MultiHeadAttention` keeps separate q/k/v kernels (width, heads, head_dim) and an output
kernel (heads, head_dim, width); PyTorch packs q|k|v into one (3*width, width) `in_proj_weight`.
The numbers are the same (both scale q by 1/sqrt(head_dim), both drop attention probabilities),
so `SelfAttention.torch_links` splits and joins them. Padding is an explicit boolean mask
(batch, 1, keys), True = attend, never Keras's implicit `mask_zero` (see `transformer.py`).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

from nnzoo.keras_impl.layers import activation as make_activation
from nnzoo.keras_impl.layers import serializable


def _dense_to_torch(k: np.ndarray) -> np.ndarray:
    """A q/k/v kernel (width, heads, head_dim) -> torch's (heads * head_dim, width) rows."""
    return k.reshape(k.shape[0], -1).T


@serializable
class SelfAttention(layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` whose weights link to `nn.MultiheadAttention`'s keys."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0, **kwargs: Any) -> None:
        for key in ("num_heads", "key_dim", "use_bias"):  # present in from_config's dict
            kwargs.pop(key, None)
        super().__init__(num_heads=heads, key_dim=width // heads, dropout=dropout,
                         use_bias=True, **kwargs)
        self.width = width

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "width": self.width, "heads": self.num_heads}

    def _compute_attention(self, query: Any, key: Any, value: Any, attention_mask: Any = None,
                           training: Any = None, return_attention_scores: bool = False,
                           use_causal_mask: bool = False) -> tuple[Any, Any]:
        """Keras's own attention, except in float64: there Keras's fused path (taken when dropout
        is 0) computes the softmax in float32 on JAX, and its explicit path casts 1/sqrt(head_dim)
        through float32 on TensorFlow -- 1e-8 differences that 20 AdamW steps grow past the
        parity bound. A float64 build (the parity and training checks) computes it exactly here."""
        if keras.backend.standardize_dtype(query.dtype) != "float64" or use_causal_mask:
            return super()._compute_attention(query, key, value, attention_mask, training,
                                              return_attention_scores, use_causal_mask)
        scale = ops.convert_to_tensor(self._inverse_sqrt_key_dim, dtype="float64")
        scores = ops.einsum(self._dot_product_equation, key, query * scale)
        scores = self._masked_softmax(scores, attention_mask)
        dropped = self._dropout_layer(scores, training=training) if self._dropout > 0.0 else scores
        return ops.einsum(self._combine_equation, dropped, value), scores

    def _masked_softmax(self, attention_scores: Any, attention_mask: Any = None) -> Any:
        """Keras's masked softmax, except over a single key (a length-1 sequence): there Keras
        warns that the result is always 1 (a UserWarning in the user's script, issue 19). That
        is the intended value here, so it is computed as softmax computes it, exp(s - max s) over
        one element -- 1, NaN where s is not finite, and no gradient -- without the warning."""
        if all(attention_scores.shape[axis] == 1 for axis in self._softmax.axis):
            return ops.exp(attention_scores - attention_scores)
        return super()._masked_softmax(attention_scores, attention_mask)

    def torch_links(self) -> list[Any]:
        from nnzoo.links import Link, torch_path

        w, h = self.width, self.num_heads
        qkv = (self.query_dense, self.key_dense, self.value_dense)
        head_shape = (w, h, w // h)

        def kernels_to_keras(t: np.ndarray) -> list[np.ndarray]:
            return [part.T.reshape(head_shape) for part in np.split(t, 3, axis=0)]

        def biases_to_keras(t: np.ndarray) -> list[np.ndarray]:
            return [part.reshape(h, w // h) for part in np.split(t, 3)]

        out = self.output_dense
        return [
            Link(f"{torch_path(self.name)}.in_proj_weight", tuple(d.kernel for d in qkv),
                 lambda ks: np.concatenate([_dense_to_torch(k) for k in ks], axis=0),
                 kernels_to_keras),
            Link(f"{torch_path(self.name)}.in_proj_bias", tuple(d.bias for d in qkv),
                 lambda bs: np.concatenate([b.reshape(-1) for b in bs]), biases_to_keras),
            Link(f"{torch_path(self.name)}.out_proj.weight", (out.kernel,),
                 lambda ks: ks[0].reshape(-1, w).T, lambda t: [t.T.reshape(h, w // h, w)]),
            Link(f"{torch_path(self.name)}.out_proj.bias", (out.bias,),
                 lambda bs: bs[0], lambda t: [t]),
        ]


@serializable
class TorchParameter(layers.Layer):
    """Base of layers holding one bare torch `nn.Parameter` (no `.weight` suffix in its key).

    `torch_key` defaults to the layer's name (`class_token`; ViT's `encoder.pos_embedding`).
    """

    def __init__(self, torch_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.torch_key = torch_key

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "torch_key": self.torch_key}

    def torch_links(self) -> list[Any]:
        from nnzoo.links import Link, torch_path

        return [Link(self.torch_key or torch_path(self.name), (self.param,),
                     lambda vs: vs[0], lambda t: [t])]


@serializable
class ClassToken(TorchParameter):
    """Prepend a learned (1, 1, width) token to a (batch, time, width) sequence (zeros at init)."""

    def build(self, input_shape: Any) -> None:
        self.param = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="zeros",
                                     name="class_token")

    def call(self, x: Any) -> Any:
        token = ops.broadcast_to(ops.cast(self.param, x.dtype), (ops.shape(x)[0], 1, x.shape[-1]))
        return ops.concatenate([token, x], axis=1)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        b, t, c = input_shape
        return (b, None if t is None else t + 1, c)


@serializable
class PositionEmbedding(TorchParameter):
    """Add a learned (1, length, width) table to the first `time` positions (normal, std 0.02)."""

    def __init__(self, length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.length = length

    def build(self, input_shape: Any) -> None:
        self.param = self.add_weight(
            shape=(1, self.length, input_shape[-1]), name="pos_embedding",
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )

    def call(self, x: Any) -> Any:
        return x + ops.cast(self.param, x.dtype)[:, : ops.shape(x)[1]]

    def compute_output_spec(self, x: Any) -> Any:
        # JAX cannot infer `min(length, time)` for a symbolic time axis: the output is the input's
        return keras.KerasTensor(x.shape, x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "length": self.length}


def mlp_block(x: Any, width: int, mlp_dim: int, *, activation: str, dropout: float,
              name: str) -> Any:
    """Dense -> activation -> Dropout -> Dense -> Dropout, named `<name>.0` .. `<name>.4`."""
    x = layers.Dense(mlp_dim, name=f"{name}-0")(x)
    x = make_activation(activation, name=f"{name}-1")(x)
    x = layers.Dropout(dropout, name=f"{name}-2")(x)
    x = layers.Dense(width, name=f"{name}-3")(x)
    return layers.Dropout(dropout, name=f"{name}-4")(x)


def encoder_block(
    x: Any,
    width: int,
    heads: int,
    mlp_dim: int,
    *,
    activation: str = "gelu",
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
    ln_eps: float = 1e-6,
    norm_first: bool = True,
    mask: Any = None,
    name: str,
) -> Any:
    """The twin of torch `EncoderBlock` (pre- or post-norm), on a (batch, time, width) tensor.

    mask: None, or a bool tensor (batch, 1, time) broadcast over queries, True = a real key.
    """
    attention = SelfAttention(width, heads, attention_dropout, name=f"{name}-self_attention")
    ln_1 = layers.LayerNormalization(epsilon=ln_eps, name=f"{name}-ln_1")
    ln_2 = layers.LayerNormalization(epsilon=ln_eps, name=f"{name}-ln_2")
    drop = layers.Dropout(dropout, name=f"{name}-dropout")

    def attend(y: Any) -> Any:
        return drop(attention(y, y, attention_mask=mask))

    if norm_first:
        x = layers.Add(name=f"{name}-add_1")([x, attend(ln_1(x))])
        y = mlp_block(ln_2(x), width, mlp_dim, activation=activation, dropout=dropout,
                      name=f"{name}-mlp")
        return layers.Add(name=f"{name}-add_2")([x, y])
    x = ln_1(layers.Add(name=f"{name}-add_1")([x, attend(x)]))
    y = mlp_block(x, width, mlp_dim, activation=activation, dropout=dropout, name=f"{name}-mlp")
    return ln_2(layers.Add(name=f"{name}-add_2")([x, y]))
