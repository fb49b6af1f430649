"""MLP in PyTorch; `nnzoo/keras_impl/mlp.py` is the same network, layer for layer."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nnzoo.specs.mlp import MLPSpec
from nnzoo.torch_impl.layers import ZooModule, activation, norm


def hidden_block(spec: MLPSpec, width_in: int, width: int) -> nn.Sequential:
    """fc -> norm -> act -> drop, named so that the Keras twin can use the same paths."""
    parts: OrderedDict[str, nn.Module] = OrderedDict(fc=nn.Linear(width_in, width, bias=spec.bias))
    if spec.norm != "none":
        parts["norm"] = norm(spec, spec.norm, width, dims=1)
    parts["act"] = activation(spec.activation)
    if spec.dropout:
        parts["drop"] = nn.Dropout(spec.dropout)
    return nn.Sequential(parts)


class MLP(ZooModule):
    def __init__(self, spec: MLPSpec) -> None:
        super().__init__(spec)
        widths = (spec.input_size, *spec.hidden_sizes)
        self.hidden = nn.ModuleList(hidden_block(spec, a, b) for a, b in zip(widths, widths[1:]))
        self.head = nn.Linear(widths[-1], spec.num_classes) if spec.num_classes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.hidden:
            x = block(x)
        return self.head(x)


def build(spec: MLPSpec) -> MLP:
    return MLP(spec)
