"""Transformer encoder classifier in PyTorch; `nnzoo/keras_impl/transformer.py` is its twin.

Batch-first throughout: the blocks' `nn.MultiheadAttention` has `batch_first=True`. (seeds/000's
Transformer fed (batch, time, width) to a sequence-first attention, so each position attended
across the *batch* -- a sample's output depended on the other samples. Here it cannot.)
Padding ids become a `key_padding_mask`, so attention never reads a padded key; sequences are
padded at the end, so real tokens keep their positions and a padded sequence's output equals
its output alone.
"""

from __future__ import annotations

import torch
from torch import nn

from nnzoo.specs.transformer import TransformerSpec, sinusoidal_positions
from nnzoo.torch_impl.attention import EncoderBlock
from nnzoo.torch_impl.layers import ZooModule, first_token, masked_mean


class Transformer(ZooModule):
    """embedding -> [class_token] -> + pos_embedding -> dropout -> layers.i -> [ln] -> pool -> head."""

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__(spec)
        width = spec.embed_dim
        self.embedding = nn.Embedding(spec.vocab_size, width, padding_idx=spec.padding_idx)
        if spec.pooling == "cls":
            self.class_token = nn.Parameter(torch.zeros(1, 1, width))
        if spec.positional == "learned":
            self.pos_embedding = nn.Parameter(torch.empty(1, spec.positions, width).normal_(std=0.02))
        elif spec.positional == "sinusoidal":
            # Fixed numbers, not state: not saved, not counted (the Keras twin holds no weight).
            table = torch.from_numpy(sinusoidal_positions(spec.positions, width))[None]
            self.register_buffer("pos_embedding", table, persistent=False)
        self.dropout = nn.Dropout(spec.dropout)
        self.layers = nn.ModuleList(
            EncoderBlock(width, spec.num_heads, spec.mlp_dim, activation=spec.activation,
                         dropout=spec.dropout, attention_dropout=spec.attention_dropout,
                         ln_eps=spec.ln_eps, norm_first=spec.norm_first)
            for _ in range(spec.depth)
        )
        self.ln = nn.LayerNorm(width, eps=spec.ln_eps) if spec.final_norm else nn.Identity()
        self.head = nn.Linear(width, spec.num_classes) if spec.num_classes else nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        pad = tokens == spec.padding_idx if spec.masked else None
        x = self.embedding(tokens)
        if spec.pooling == "cls":
            x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
            if pad is not None:
                pad = torch.cat([pad.new_zeros(pad.shape[0], 1), pad], dim=1)
        if spec.positional != "none":
            x = x + self.pos_embedding[:, : x.shape[1]]
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x, key_padding_mask=pad)
        x = self.ln(x)
        x = first_token(x) if spec.pooling == "cls" else masked_mean(x, None if pad is None else ~pad)
        return self.head(x)


def build(spec: TransformerSpec) -> Transformer:
    return Transformer(spec)
