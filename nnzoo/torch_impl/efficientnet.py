"""EfficientNet in PyTorch with torchvision's module names and shapes, so its checkpoints load
strictly.

`nnzoo/keras_impl/efficientnet.py` is the same network, block for block. Module paths:
`features.0` (stem), `features.<s>.<j>.block.<k>` (block `j` of stage `s`: expand, depthwise,
squeeze-excitation `fc1` / `fc2`, projection), `features.<last>` (the 1x1 convolution before
pooling) and `classifier.1`. The blocks are MobileNet's (`nnzoo/torch_impl/mobilenet.py`), with
SiLU, a sigmoid gate and stochastic depth on the residual branch.
"""

from __future__ import annotations

import torch
from torch import nn

from nnzoo.specs.efficientnet import EfficientNetSpec, MBConvBlock
from nnzoo.torch_impl.convnext import StochasticDepth
from nnzoo.torch_impl.layers import ZooModule
from nnzoo.torch_impl.mobilenet import InvertedResidual, SqueezeExcitation, conv_norm_act


class MBConv(InvertedResidual):
    """MobileNet's inverted residual whose residual branch is dropped per example in training."""

    def __init__(self, spec: EfficientNetSpec, b: MBConvBlock) -> None:
        layers: list[nn.Module] = []
        if b.expanded != b.c_in:
            layers.append(conv_norm_act(spec, b.c_in, b.expanded, kernel=1, act="silu"))
        layers += [
            conv_norm_act(spec, b.expanded, b.expanded, kernel=b.kernel, stride=b.stride, groups=b.expanded,
                          act="silu"),
            SqueezeExcitation(b.expanded, b.squeeze, act="silu", gate="sigmoid"),
            conv_norm_act(spec, b.expanded, b.c_out, kernel=1, act=None),
        ]
        super().__init__(layers, residual=b.residual)
        # Only a residual branch can be dropped (torchvision makes the module for every block
        # and skips it; it holds no weights, so the state dicts are the same).
        self.stochastic_depth = StochasticDepth(b.drop_rate) if b.residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if self.stochastic_depth is None:
            return y
        y = self.stochastic_depth(y)
        y += x  # in place, as torchvision: y is a batch norm's output (or its masked copy)
        return y


class EfficientNet(ZooModule):
    def __init__(self, spec: EfficientNetSpec) -> None:
        super().__init__(spec)
        blocks = spec.blocks()
        parts: list[nn.Module] = [conv_norm_act(spec, spec.in_channels, spec.width(spec.stem_width), kernel=3,
                                                stride=2, act="silu")]
        for stage in range(1, len(spec.stages) + 1):
            parts.append(nn.Sequential(*(MBConv(spec, b) for b in blocks if b.stage == stage)))
        parts.append(conv_norm_act(spec, blocks[-1].c_out, spec.last_width, kernel=1, act="silu"))
        self.features = nn.Sequential(*parts)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        head = nn.Linear(spec.last_width, spec.num_classes) if spec.num_classes else nn.Identity()
        self.classifier = nn.Sequential(nn.Dropout(spec.dropout), head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def build(spec: EfficientNetSpec) -> EfficientNet:
    return EfficientNet(spec)
