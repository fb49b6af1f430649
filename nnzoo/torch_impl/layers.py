"""Small shared pieces of the PyTorch builds; `nnzoo/keras_impl/layers.py` is their twin.

Every argument on which PyTorch and Keras defaults differ is passed explicitly from the spec.
Twins take the same arguments in the same order: where a helper here takes the input's width
`c_in`, the Keras twin takes the input tensor `x` (its width is read from it; a Keras helper
that only makes a layer, `norm`, needs neither), and the Keras twin ends with the keyword-only
`name`, the PyTorch module path it stands for. One PyTorch-only keyword: `activation`'s
`inplace`, a memory matter with no Keras counterpart.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from nnzoo.specs.base import Spec


class ZooModule(nn.Module):
    """Base of every nnzoo PyTorch model: carries its spec and vets its input.

    A forward pre-hook refuses a wrongly shaped or typed input with nnzoo's message, and casts
    a floating input to the model's dtype (float64 or bfloat16 data into a float32 model), as
    Keras does on its side; the hook stands aside while compiling or exporting.
    """

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.spec = spec
        self.register_forward_pre_hook(_vet_input)


def _vet_input(module: ZooModule, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    if not args or not isinstance(args[0], torch.Tensor):
        return None
    x = args[0]
    if not (torch.compiler.is_compiling() or torch.jit.is_tracing()):
        module.spec.check_input_dtype(x.dtype)
        module.spec.check_input_shape(tuple(x.shape), channels_last=False)
    if x.is_floating_point():
        param = next(module.parameters(), None)
        if param is not None and param.dtype != x.dtype:
            return (x.to(param.dtype), *args[1:])
    return None


def activation(kind: str, *, inplace: bool = False) -> nn.Module:
    """The activation named by the spec; GELU's approximation is explicit, never a default.

    `inplace` overwrites the input (no new feature map to allocate: measured 5-20% of a
    MobileNet's or EfficientNet's CPU time) and is for callers whose input nothing else reads,
    such as a batch norm's output; GELU, tanh, the sigmoid and the written-out hard sigmoid
    ignore it.
    """
    if kind == "relu":
        return nn.ReLU(inplace=inplace)
    if kind == "gelu":
        return nn.GELU(approximate="none")
    if kind == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    if kind == "silu":
        return nn.SiLU(inplace=inplace)
    if kind == "tanh":
        return nn.Tanh()
    if kind == "relu6":
        return nn.ReLU6(inplace=inplace)
    if kind == "hardswish":  # x * relu6(x + 3) / 6
        return nn.Hardswish(inplace=inplace)
    if kind == "hardsigmoid":
        return HardSigmoid()
    if kind == "sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"unknown activation {kind!r}")  # specs validate first; a bug if reached


class HardSigmoid(nn.Module):
    """relu6(x + 3) / 6, written out: `nn.Hardsigmoid`'s CPU backward multiplies by a float32
    1/6 even in float64 (measured, PyTorch 2.13: 5.0e-9 off, so float64 training drifts from
    Keras's exact gradient after a few steps). Used on squeeze-excitation gates only: (N, C, 1, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.relu6(x + 3.0) / 6.0


def norm(spec: Any, kind: str, c_in: int, *, dims: int) -> nn.Module:
    """Batch/group/layer norm over `c_in` channels, with eps and momentum taken from the spec.

    `dims` is 1 for (N, C) features and 2 for (N, C, H, W) images.
    """
    if kind == "batch":
        cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        return cls(c_in, eps=spec.bn_eps, momentum=spec.bn_momentum)
    if kind == "group":
        return nn.GroupNorm(spec.gn_groups, c_in, eps=spec.gn_eps)
    if kind == "layer":
        return nn.LayerNorm(c_in, eps=spec.ln_eps)
    raise ValueError(f"unknown norm {kind!r}")


def dense_block(c_in: int, width: int, *, act: str, dropout: float, bias: bool = True,
                norm_layer: nn.Module | None = None) -> nn.Sequential:
    """fc -> [norm] -> act -> [drop]: an MLP's hidden layer, and a classifier head's."""
    parts: OrderedDict[str, nn.Module] = OrderedDict(fc=nn.Linear(c_in, width, bias=bias))
    if norm_layer is not None:
        parts["norm"] = norm_layer
    parts["act"] = activation(act)
    if dropout:
        parts["drop"] = nn.Dropout(dropout)
    return nn.Sequential(parts)


def conv2d(c_in: int, c_out: int, kernel: int, *, stride: int = 1, padding: int = 0, bias: bool,
           groups: int = 1) -> nn.Conv2d:
    """A convolution with every argument explicit (the Keras twin pads the same way)."""
    return nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=bias)


def pool2d(kind: str, size: int, stride: int, *, padding: int = 0) -> nn.Module:
    """Max or average pooling with symmetric padding (average counts padded zeros, as Keras's twin)."""
    if kind == "max":
        return nn.MaxPool2d(size, stride, padding)
    return nn.AvgPool2d(size, stride, padding, count_include_pad=True)


def channels_last(module: nn.Module) -> nn.Module:
    """Mark a module that runs channels-last, (N, H, W, C), inside an NCHW network (ConvNeXt's
    block norm and MLP): the layer report then compares its output with its Keras twin as it is,
    not transposed. (No Keras twin: every Keras image layer is channels-last.)"""
    module.nnzoo_channels_last = True
    return module


def masked_mean(x: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
    """Mean of (batch, time, width) over the steps where `real` (batch, time) is True (all steps
    if None): the recurrent summary and the transformer's pooling."""
    if real is None:
        return x.mean(dim=1)
    # `where`, not a product: whatever a padded step holds (even inf/nan) cannot leak in.
    total = torch.where(real[..., None], x, torch.zeros_like(x)).sum(dim=1)
    return total / real.sum(dim=1, keepdim=True).clamp(min=1).to(x.dtype)


def first_token(x: torch.Tensor) -> torch.Tensor:
    """(batch, time, width) -> (batch, width) at position 0: the class token's state (ViT and
    the text transformer)."""
    return x[:, 0]
