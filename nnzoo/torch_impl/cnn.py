"""Plain CNN in PyTorch; `nnzoo/keras_impl/cnn.py` is the same network, layer for layer."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nnzoo.specs.cnn import CNNSpec, ConvStage
from nnzoo.specs.hybrid import HybridSpec
from nnzoo.torch_impl.layers import ZooModule, activation, conv2d, dense_block, norm, pool2d


def stage(spec: CNNSpec | HybridSpec, c_in: int, st: ConvStage) -> nn.Sequential:
    """conv (or dw + pw) -> norm/act in the spec's order -> pool (the hybrid family's front end too)."""
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    k, s, p, bias = st.kernel, st.stride, st.padding, spec.conv_bias
    if st.separable:
        parts["dw"] = conv2d(c_in, c_in, k, stride=s, padding=p, bias=bias, groups=c_in)
        parts["pw"] = conv2d(c_in, st.channels, 1, bias=bias)
    else:
        parts["conv"] = conv2d(c_in, st.channels, k, stride=s, padding=p, bias=bias)
    post = ["norm", "act"] if spec.order == "conv-norm-act" else ["act", "norm"]
    for part in post:
        if part == "norm" and spec.norm != "none":
            parts["norm"] = norm(spec, spec.norm, st.channels, dims=2)
        elif part == "act":
            parts["act"] = activation(spec.activation)
    if st.pool != "none":
        parts["pool"] = pool2d(st.pool, st.pool_size, st.pool_stride, padding=st.pool_padding)
    return nn.Sequential(parts)


class CNN(ZooModule):
    def __init__(self, spec: CNNSpec) -> None:
        super().__init__(spec)
        channels = (spec.in_channels, *(st.channels for st in spec.stages))
        self.features = nn.Sequential(*(stage(spec, c, st) for c, st in zip(channels, spec.stages)))
        if spec.global_pool == "flatten":
            self.pool = nn.Flatten()
        else:
            pool = nn.AdaptiveAvgPool2d(1) if spec.global_pool == "avg" else nn.AdaptiveMaxPool2d(1)
            self.pool = nn.Sequential(pool, nn.Flatten())
        widths = (spec.pooled_width, *spec.hidden_sizes)
        self.classifier = nn.ModuleList(
            dense_block(a, b, act=spec.activation, dropout=spec.dropout)
            for a, b in zip(widths, widths[1:])
        )
        self.head = nn.Linear(widths[-1], spec.num_classes) if spec.num_classes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        for block in self.classifier:
            x = block(x)
        return self.head(x)


def build(spec: CNNSpec) -> CNN:
    return CNN(spec)
