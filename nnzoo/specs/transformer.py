"""Transformer encoder classifier over token ids.

token ids -> embedding -> [class token] -> + positions -> dropout -> depth x encoder block
-> [final LayerNorm] -> pool (mean over real tokens, or the class token) -> head.

The blocks are torchvision's ViT `EncoderBlock` layout (see nnzoo/torch_impl/attention.py), pre- or
post-norm. Attention is batch-first in both backends; padded keys (`padding_idx`) are ignored by
attention and by mean pooling, so a padded sequence gives the result it gives alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nnzoo.errors import InputShapeError
from nnzoo.specs.base import Activation, TokenSpec


@dataclass(frozen=True, kw_only=True)
class TransformerSpec(TokenSpec):
    """An encoder classifier on (batch, time) token ids; time <= max_len with positions."""

    family = "transformer"

    vocab_size: int = 1000
    max_len: int = 512
    padding_idx: int | None = 0
    embed_dim: int = 256
    depth: int = 4
    num_heads: int = 8
    mlp_dim: int = 1024
    activation: Activation = "gelu"
    dropout: float = 0.1
    attention_dropout: float = 0.1
    norm_first: bool = True
    final_norm: bool = True
    ln_eps: float = 1e-5
    positional: Literal["learned", "sinusoidal", "none"] = "learned"
    pooling: Literal["mean", "cls"] = "mean"
    num_classes: int = 10
    seq_len: int = 16

    def validate(self) -> None:
        self.require_positive("max_len")
        self.require(self.embed_dim % self.num_heads == 0, "num_heads",
                     f"must divide embed_dim={self.embed_dim}")
        if self.positional == "sinusoidal":
            self.require(self.embed_dim % 2 == 0, "embed_dim", "must be even for sinusoidal positions")
        if self.positional != "none":
            self.require(self.seq_len <= self.max_len, "seq_len",
                         f"must be <= max_len={self.max_len} (the position table's length)")

    @property
    def positions(self) -> int:
        """Rows of the position table: max_len tokens plus the class token."""
        return self.max_len + (self.pooling == "cls")

    @property
    def pooled_width(self) -> int:
        return self.embed_dim

    def input_shape(self) -> tuple[int, ...]:
        return (self.seq_len,)

    def check_input_shape(self, shape: tuple[int | None, ...], *, channels_last: bool) -> None:
        super().check_input_shape(shape, channels_last=channels_last)
        time = shape[1]
        if self.positional != "none" and time is not None and time > self.max_len:
            raise InputShapeError(
                f"transformer with {self.positional} positions takes at most max_len="
                f"{self.max_len} tokens; got {time} (raise max_len or use positional='none')"
            )


def sinusoidal_positions(length: int, width: int) -> np.ndarray:
    """The fixed (length, width) table of "Attention is all you need": sin on even, cos on odd
    features. Both backends add these same numbers (computed here, once, in float64)."""
    position = np.arange(length, dtype=np.float64)[:, None]
    rate = 10000.0 ** (-np.arange(0, width, 2, dtype=np.float64) / width)
    table = np.zeros((length, width))
    table[:, 0::2] = np.sin(position * rate)
    table[:, 1::2] = np.cos(position * rate)
    return table.astype(np.float32)


SPEC = TransformerSpec

VARIANTS = {
    "transformer_seed": (
        TransformerSpec(vocab_size=1000, embed_dim=256, depth=3, num_heads=8, mlp_dim=512,
                        activation="relu", norm_first=False, final_norm=False, dropout=0.1,
                        attention_dropout=0.1, positional="none", pooling="mean",
                        num_classes=10),
        "3 post-norm blocks, 256 wide, 8 heads, ReLU FFN 512, no positions, mean pool "
        "(seeds/000 TransformerPyTorch: 1,839,882 params; batch-first here, the seed's attention "
        "was sequence-first and mixed the batch)",
        {"trainable": 1_839_882},
    ),
    "transformer_small": (
        TransformerSpec(vocab_size=30522, max_len=512, embed_dim=256, depth=4, num_heads=4,
                        mlp_dim=1024, activation="gelu", norm_first=True, final_norm=True,
                        positional="sinusoidal", pooling="mean", num_classes=2),
        "4 pre-norm GELU blocks x 256 wide, 4 heads, sinusoidal positions, mean over real tokens",
    ),
    "transformer_base": (
        TransformerSpec(vocab_size=30522, max_len=512, embed_dim=768, depth=12, num_heads=12,
                        mlp_dim=3072, activation="gelu", norm_first=True, final_norm=True,
                        positional="learned", pooling="cls", num_classes=2),
        "12 pre-norm GELU blocks x 768 wide (BERT-base sized encoder), learned positions, class token",
    ),
}
