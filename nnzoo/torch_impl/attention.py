"""Transformer encoder pieces shared by the text `transformer` and `vit` PyTorch builds.

Module names follow torchvision's ViT `EncoderBlock` exactly, so that a torchvision checkpoint
loads with `strict=True` into a build made of these blocks:

    <block>.ln_1                          LayerNorm(width, eps=ln_eps)
    <block>.self_attention                nn.MultiheadAttention(width, heads, batch_first=True)
        .in_proj_weight (3*width, width)  packed q, k, v projections (rows q | k | v)
        .in_proj_bias (3*width,)
        .out_proj.weight / .out_proj.bias
    <block>.dropout                       Dropout(dropout) on the attention output
    <block>.ln_2                          LayerNorm(width, eps=ln_eps)
    <block>.mlp                           MLPBlock, a Sequential:
        .0 Linear(width, mlp_dim)  .1 activation  .2 Dropout  .3 Linear(mlp_dim, width)  .4 Dropout

Attention is always batch-first (`batch_first=True`): a sequence-first `MultiheadAttention` fed
(batch, time, width) silently attends across the batch (seeds/000's Transformer did).
`nnzoo/keras_impl/attention.py` builds the same block with the same names.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nnzoo.torch_impl.layers import activation as make_activation


class MLPBlock(nn.Sequential):
    """Linear -> activation -> Dropout -> Linear -> Dropout (torchvision's indices 0..4)."""

    def __init__(self, width: int, mlp_dim: int, *, activation: str, dropout: float) -> None:
        super().__init__(OrderedDict([
            ("0", nn.Linear(width, mlp_dim)),
            ("1", make_activation(activation)),
            ("2", nn.Dropout(dropout)),
            ("3", nn.Linear(mlp_dim, width)),
            ("4", nn.Dropout(dropout)),
        ]))


class EncoderBlock(nn.Module):
    """One encoder layer: self-attention and an MLP, each in a residual branch.

    norm_first=True (pre-norm, ViT):   x = x + drop(attn(ln_1(x)));  x = x + mlp(ln_2(x))
    norm_first=False (post-norm, the original Transformer and seeds/000):
                                       x = ln_1(x + drop(attn(x)));  x = ln_2(x + mlp(x))
    """

    def __init__(
        self,
        width: int,
        heads: int,
        mlp_dim: int,
        *,
        activation: str = "gelu",
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        ln_eps: float = 1e-6,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.ln_1 = nn.LayerNorm(width, eps=ln_eps)
        self.self_attention = nn.MultiheadAttention(
            width, heads, dropout=attention_dropout, bias=True, batch_first=True
        )
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(width, eps=ln_eps)
        self.mlp = MLPBlock(width, mlp_dim, activation=activation, dropout=dropout)

    def attend(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        y, _ = self.self_attention(x, x, x, key_padding_mask=key_padding_mask, need_weights=False)
        return self.dropout(y)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (batch, time, width); key_padding_mask: (batch, time) bool, True = padding (ignored)."""
        if self.norm_first:
            x = x + self.attend(self.ln_1(x), key_padding_mask)
            return x + self.mlp(self.ln_2(x))
        x = self.ln_1(x + self.attend(x, key_padding_mask))
        return self.ln_2(x + self.mlp(x))
