"""Small shared pieces of the PyTorch builds; `nnzoo/keras_impl/layers.py` is their twin.

Every argument on which PyTorch and Keras defaults differ is passed explicitly from the spec.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nnzoo.specs.base import Spec


class ZooModule(nn.Module):
    """Base of every nnzoo PyTorch model: carries its spec and checks its input's shape."""

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.spec = spec

    def check_input(self, x: torch.Tensor) -> None:
        """Refuse a wrongly shaped input with nnzoo's message (skipped while tracing)."""
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return
        self.spec.check_input_shape(tuple(x.shape), channels_last=False)


def activation(kind: str) -> nn.Module:
    """The activation named by the spec; GELU's approximation is explicit, never a default."""
    if kind == "relu":
        return nn.ReLU()
    if kind == "gelu":
        return nn.GELU(approximate="none")
    if kind == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    if kind == "silu":
        return nn.SiLU()
    if kind == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {kind!r}")  # specs validate first; a bug if reached


def norm(spec: Any, kind: str, channels: int, *, dims: int) -> nn.Module:
    """Batch/group/layer norm over `channels`, with eps and momentum taken from the spec.

    `dims` is 1 for (N, C) features and 2 for (N, C, H, W) images.
    """
    if kind == "batch":
        cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        return cls(channels, eps=spec.bn_eps, momentum=spec.bn_momentum)
    if kind == "group":
        return nn.GroupNorm(spec.gn_groups, channels, eps=spec.gn_eps)
    if kind == "layer":
        return nn.LayerNorm(channels, eps=spec.ln_eps)
    raise ValueError(f"unknown norm {kind!r}")


def pool2d(kind: str, size: int, stride: int, padding: int) -> nn.Module:
    """Max or average pooling with symmetric padding (average counts padded zeros, as Keras's twin)."""
    if kind == "max":
        return nn.MaxPool2d(size, stride, padding)
    return nn.AvgPool2d(size, stride, padding, count_include_pad=True)
