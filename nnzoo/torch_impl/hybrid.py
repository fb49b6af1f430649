"""Hybrid CNN + RNN + attention models in PyTorch; `nnzoo/keras_impl/hybrid.py` is the same network.

    features.i      the CNN family's conv stages (`nnzoo/torch_impl/cnn.py`)
    proj            Linear(step_width, proj_dim)              (absent if proj_dim=0)
    lstm | gru      one native nn.LSTM / nn.GRU stack, batch-first, PyTorch's two biases
    encoder         pos_embedding, layers.encoder_layer_i (torchvision's ViT block), ln
    head            Linear(width, num_classes) on every step, or on their mean

The recurrent stack and the blocks are the recurrent and ViT families' own, so their keys
(`lstm.weight_ih_l0_reverse`, `encoder.layers.encoder_layer_0.self_attention.in_proj_weight`)
are too.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nnzoo.specs.hybrid import HybridSpec
from nnzoo.torch_impl.attention import EncoderBlock
from nnzoo.torch_impl.cnn import stage
from nnzoo.torch_impl.layers import ZooModule


class Encoder(nn.Module):
    """[Add the position table], the pre-norm transformer blocks, a final layer norm."""

    def __init__(self, spec: HybridSpec) -> None:
        super().__init__()
        d = spec.width
        if spec.positions:
            self.pos_embedding = nn.Parameter(torch.empty(1, spec.steps, d).normal_(std=0.02))
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(
                d, spec.num_heads, spec.mlp_dim, activation=spec.mlp_activation,
                dropout=spec.dropout, attention_dropout=spec.attention_dropout,
                ln_eps=spec.ln_eps, norm_first=True,
            ))
            for i in range(spec.attention_layers)
        ))
        self.ln = nn.LayerNorm(d, eps=spec.ln_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "pos_embedding"):
            x = x + self.pos_embedding
        return self.ln(self.layers(x))


class Hybrid(ZooModule):
    def __init__(self, spec: HybridSpec) -> None:
        super().__init__(spec)
        channels = (spec.in_channels, *(st.channels for st in spec.stages))
        self.features = nn.Sequential(*(stage(spec, c, st) for c, st in zip(channels, spec.stages)))
        if spec.proj_dim:
            self.proj = nn.Linear(spec.step_width, spec.proj_dim)
        if spec.rnn != "none":
            rnn = nn.LSTM if spec.rnn == "lstm" else nn.GRU
            self.add_module(spec.rnn, rnn(
                spec.rnn_input, spec.hidden_size, spec.num_layers, bias=True, batch_first=True,
                dropout=spec.dropout if spec.num_layers > 1 else 0.0,
                bidirectional=spec.bidirectional,
            ))
        if spec.attention_layers:
            self.encoder = Encoder(spec)
        self.head = nn.Linear(spec.width, spec.num_classes) if spec.num_classes else nn.Identity()

    def steps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H', W') -> (N, steps, features): columns left to right (each column's
        features channel-major), or positions row by row."""
        if self.spec.sequence == "columns":
            n, c, h, w = x.shape
            return x.permute(0, 3, 1, 2).reshape(n, w, c * h)
        return x.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        x = self.steps(self.features(x))
        if spec.proj_dim:
            x = self.proj(x)
        if spec.rnn != "none":
            x, _ = getattr(self, spec.rnn)(x)
        if spec.attention_layers:
            x = self.encoder(x)
        if spec.output == "pooled":
            x = x.mean(dim=1)
        return self.head(x)


def build(spec: HybridSpec) -> Hybrid:
    return Hybrid(spec)
