"""ConvNeXt in PyTorch with torchvision's module names and shapes, so its checkpoints load strictly.

`nnzoo/keras_impl/convnext.py` is the same network, block for block. Module paths are the
contract: `features.0.0` (stem convolution), `features.0.1` (its norm), `features.<s>.<j>.block.0`
(depthwise 7x7), `.block.2` (norm), `.block.3` / `.block.5` (the MLP), the bare parameter
`features.<s>.<j>.layer_scale` of shape (C, 1, 1), `features.<s+1>.0` / `.1` (the norm and 2x2
convolution between stages), `classifier.0` (norm) and `classifier.2` (head).
"""

from __future__ import annotations

import torch
from torch import nn

from nnzoo.specs.convnext import ConvNeXtSpec
from nnzoo.torch_impl.layers import ZooModule, activation, channels_last, conv2d, norm


class Permute(nn.Module):
    """Reorder the axes (NCHW <-> NHWC): the block's norm and MLP work channels-last."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of an NCHW image (each pixel normalized on its own)."""

    def __init__(self, spec: ConvNeXtSpec, c_in: int) -> None:
        super().__init__(c_in, eps=spec.ln_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class StochasticDepth(nn.Module):
    """In training, zero the residual branch of each example with probability `rate` and scale
    the kept ones by 1 / (1 - rate); the identity in eval mode or at rate 0."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        return x * mask.bernoulli_(keep).div_(keep)


class CNBlock(nn.Module):
    """depthwise 7x7 -> norm -> Linear(4C) -> GELU -> Linear(C), scaled per channel, plus x."""

    def __init__(self, spec: ConvNeXtSpec, c_in: int, drop_rate: float) -> None:
        super().__init__()
        width = c_in
        self.block = nn.Sequential(
            conv2d(width, width, 7, padding=3, bias=True, groups=width),
            Permute((0, 2, 3, 1)),
            channels_last(norm(spec, "layer", width, dims=2)),
            channels_last(nn.Linear(width, 4 * width)),
            channels_last(activation("gelu")),
            channels_last(nn.Linear(4 * width, width)),
            Permute((0, 3, 1, 2)),
        )
        self.layer_scale = nn.Parameter(torch.full((width, 1, 1), spec.layer_scale))
        self.stochastic_depth = StochasticDepth(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.stochastic_depth(self.layer_scale * self.block(x))


class ConvNeXt(ZooModule):
    def __init__(self, spec: ConvNeXtSpec) -> None:
        super().__init__(spec)
        first = spec.widths[0]
        stem = nn.Sequential(conv2d(spec.in_channels, first, 4, stride=4, bias=True),
                             LayerNorm2d(spec, first))
        parts: list[nn.Module] = [stem]
        index = 0
        for i, (width, depth) in enumerate(zip(spec.widths, spec.layers)):
            blocks = []
            for _ in range(depth):
                blocks.append(CNBlock(spec, width, spec.block_drop_rate(index)))
                index += 1
            parts.append(nn.Sequential(*blocks))
            if i + 1 < len(spec.widths):
                parts.append(nn.Sequential(LayerNorm2d(spec, width),
                                           conv2d(width, spec.widths[i + 1], 2, stride=2, bias=True)))
        self.features = nn.Sequential(*parts)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last = spec.widths[-1]
        head = nn.Linear(last, spec.num_classes) if spec.num_classes else nn.Identity()
        self.classifier = nn.Sequential(LayerNorm2d(spec, last), nn.Flatten(1), head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def build(spec: ConvNeXtSpec) -> ConvNeXt:
    return ConvNeXt(spec)
