"""MLP in PyTorch; `nnzoo/keras_impl/mlp.py` is the same network, layer for layer."""

from __future__ import annotations

import torch
from torch import nn

from nnzoo.specs.mlp import MLPSpec
from nnzoo.torch_impl.layers import ZooModule, dense_block, norm


class MLP(ZooModule):
    def __init__(self, spec: MLPSpec) -> None:
        super().__init__(spec)
        widths = (spec.input_size, *spec.hidden_sizes)
        self.hidden = nn.ModuleList(
            dense_block(a, b, act=spec.activation, dropout=spec.dropout, bias=spec.bias,
                        norm_layer=None if spec.norm == "none" else norm(spec, spec.norm, b, dims=1))
            for a, b in zip(widths, widths[1:])
        )
        self.head = nn.Linear(widths[-1], spec.num_classes) if spec.num_classes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.hidden:
            x = block(x)
        return self.head(x)


def build(spec: MLPSpec) -> MLP:
    return MLP(spec)
