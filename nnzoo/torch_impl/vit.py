"""Vision Transformer in PyTorch with torchvision's module names and shapes.

    conv_proj                        Conv2d(in_channels, D, patch, stride=patch)
    class_token                      Parameter (1, 1, D)            (absent if class_token=False)
    encoder.pos_embedding            Parameter (1, seq_length, D)
    encoder.dropout                  Dropout
    encoder.layers.encoder_layer_i   EncoderBlock (nnzoo/torch_impl/attention.py, pre-norm)
    encoder.ln                       LayerNorm(D, eps=ln_eps)
    heads.head                       Linear(D, num_classes)        (absent if num_classes=0)

so `load_state_dict(torchvision_vit.state_dict(), strict=True)` works for a spec of the same
sizes. `nnzoo/keras_impl/vit.py` is the same network, layer for layer.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nnzoo.specs.vit import ViTSpec
from nnzoo.torch_impl.attention import EncoderBlock
from nnzoo.torch_impl.layers import ZooModule, first_token


class Encoder(nn.Module):
    """Add position embeddings, dropout, the transformer blocks, a final layer norm."""

    def __init__(self, spec: ViTSpec) -> None:
        super().__init__()
        d = spec.embed_dim
        self.pos_embedding = nn.Parameter(torch.empty(1, spec.seq_length, d).normal_(std=0.02))
        self.dropout = nn.Dropout(spec.dropout)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(
                d, spec.num_heads, spec.mlp_dim, activation=spec.activation,
                dropout=spec.dropout, attention_dropout=spec.attention_dropout,
                ln_eps=spec.ln_eps, norm_first=True,
            ))
            for i in range(spec.depth)
        ))
        self.ln = nn.LayerNorm(d, eps=spec.ln_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(ZooModule):
    def __init__(self, spec: ViTSpec) -> None:
        super().__init__(spec)
        d, p = spec.embed_dim, spec.patch_size
        self.conv_proj = nn.Conv2d(spec.in_channels, d, kernel_size=p, stride=p)
        if spec.class_token:
            self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.encoder = Encoder(spec)
        head = [("head", nn.Linear(d, spec.num_classes))] if spec.num_classes else []
        self.heads = nn.Sequential(OrderedDict(head))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, H/p * W/p, D): patches in row-major order (top row first)."""
        x = self.conv_proj(x)
        return x.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tokens(x)
        if self.spec.class_token:
            x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.encoder(x)
        x = first_token(x) if self.spec.class_token else x.mean(dim=1)
        return self.heads(x)


def build(spec: ViTSpec) -> VisionTransformer:
    return VisionTransformer(spec)
