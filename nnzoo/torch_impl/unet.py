"""U-Net in PyTorch; `nnzoo/keras_impl/unet.py` is the same network, layer for layer.

Module paths (the Keras layer names): `encoder.{i}.{pool,conv1,norm1,act1,conv2,norm2,act2}`
(no pool in stage 0), `decoder.{j}.{resize,up}` and `decoder.{j}.block.{conv1,...}`, `head`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nnzoo.specs.unet import UNetSpec
from nnzoo.torch_impl.layers import ZooModule, activation, conv2d, norm, pool2d


def double_conv(spec: UNetSpec, c_in: int, c_out: int, *, pool: bool = False) -> nn.Sequential:
    """[max-pool 2x2] -> (3x3 conv, same padding -> norm -> act) twice."""
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    if pool:
        parts["pool"] = pool2d("max", 2, 2)
    for n, (a, b) in enumerate(((c_in, c_out), (c_out, c_out)), start=1):
        parts[f"conv{n}"] = conv2d(a, b, 3, padding=1, bias=spec.block_bias)
        if spec.norm != "none":
            parts[f"norm{n}"] = norm(spec, spec.norm, b, dims=2)
        parts[f"act{n}"] = activation(spec.activation)
    return nn.Sequential(parts)


class Up(nn.Module):
    """Up-sample x2 halving the channels, concatenate [skip, up], double conv."""

    def __init__(self, spec: UNetSpec, c_in: int) -> None:
        super().__init__()
        half = c_in // 2
        if spec.upsample == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(c_in, half, 2, 2, bias=True)
        else:
            self.resize = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            self.up = conv2d(c_in, half, 3, padding=1, bias=True)
        self.block = double_conv(spec, c_in, half)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "resize"):
            x = self.resize(x)
        x = torch.cat([skip, self.up(x)], dim=1)
        return self.block(x)


class UNet(ZooModule):
    def __init__(self, spec: UNetSpec) -> None:
        super().__init__(spec)
        widths = spec.widths()
        self.encoder = nn.ModuleList(
            double_conv(spec, c_in, c_out, pool=i > 0)
            for i, (c_in, c_out) in enumerate(zip((spec.in_channels, *widths), widths))
        )
        self.decoder = nn.ModuleList(Up(spec, c) for c in reversed(widths[1:]))
        self.head = nn.Conv2d(widths[0], spec.num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        skips.pop()  # the bottleneck's output is x itself
        for up in self.decoder:
            x = up(x, skips.pop())
        return self.head(x)


def build(spec: UNetSpec) -> UNet:
    return UNet(spec)
