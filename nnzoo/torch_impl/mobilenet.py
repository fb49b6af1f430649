"""MobileNetV2/V3 in PyTorch with torchvision's module names and shapes, so its checkpoints load
strictly.

`nnzoo/keras_impl/mobilenet.py` is the same network, block for block. Module paths are the
contract: `features.0.0` / `.1` (stem convolution, norm), `features.<i>.conv.<k>` (V2's block) or
`features.<i>.block.<k>` (V3's), `...block.<k>.fc1` / `.fc2` (squeeze-and-excitation), the last
1x1 convolution `features.<n+1>.0`, and `classifier.<k>`. `conv_norm_act`, `SqueezeExcitation`
and `InvertedResidual` are EfficientNet's pieces too (`nnzoo/torch_impl/efficientnet.py`).
"""

from __future__ import annotations

import torch
from torch import nn

from nnzoo.specs.base import Spec
from nnzoo.specs.mobilenet import MBBlock, MobileNetSpec
from nnzoo.torch_impl.layers import ZooModule, activation, conv2d, norm


def conv_norm_act(spec: Spec, c_in: int, c_out: int, *, kernel: int, stride: int = 1,
                  groups: int = 1, act: str | None) -> nn.Sequential:
    """torchvision's `Conv2dNormActivation`: conv (no bias, padding (k - 1) / 2), batch norm,
    and the activation (none: a linear projection), in place on the norm's output as
    torchvision's; batch-norm eps and momentum from `spec`."""
    parts = [conv2d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False,
                    groups=groups), norm(spec, "batch", c_out, dims=2)]
    if act is not None:
        parts.append(activation(act, inplace=True))
    return nn.Sequential(*parts)


class SqueezeExcitation(nn.Module):
    """Scale each channel by a gate computed from the pooled map: pool, 1x1 conv to `squeeze`,
    `act`, 1x1 conv back, `gate` (torchvision's `SqueezeExcitation`)."""

    def __init__(self, c_in: int, squeeze: int, *, act: str, gate: str) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = conv2d(c_in, squeeze, 1, bias=True)
        self.fc2 = conv2d(squeeze, c_in, 1, bias=True)
        self.activation = activation(act)
        self.scale_activation = activation(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return x * self.scale_activation(scale)


class InvertedResidual(nn.Module):
    """[1x1 expand] -> depthwise k x k -> [squeeze-excite] -> 1x1 project, plus x when the block
    keeps its size. The layers sit in `conv` (V2) or `block` (V3, EfficientNet)."""

    def __init__(self, layers: list[nn.Module], *, residual: bool, attr: str = "block") -> None:
        super().__init__()
        self.attr = attr
        setattr(self, attr, nn.Sequential(*layers))
        self.use_res_connect = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = getattr(self, self.attr)(x)
        if self.use_res_connect:
            y += x  # in place, as torchvision: y is a batch norm's output, read by nothing else
        return y


def mobile_block(spec: MobileNetSpec, c_in: int, b: MBBlock) -> InvertedResidual:
    """One `MBBlock` in torchvision's V2 or V3 layout."""
    layers: list[nn.Module] = []
    if b.expanded != c_in:
        layers.append(conv_norm_act(spec, c_in, b.expanded, kernel=1, act=b.activation))
    layers.append(conv_norm_act(spec, b.expanded, b.expanded, kernel=b.kernel, stride=b.stride,
                                groups=b.expanded, act=b.activation))
    if b.se:
        layers.append(SqueezeExcitation(b.expanded, spec.squeeze_width(b), act="relu",
                                        gate="hardsigmoid"))
    if spec.version == "v2":  # a bare projection: conv, then norm, as two entries
        layers += [conv2d(b.expanded, b.channels, 1, bias=False), norm(spec, "batch", b.channels, dims=2)]
    else:
        layers.append(conv_norm_act(spec, b.expanded, b.channels, kernel=1, act=None))
    residual = b.stride == 1 and c_in == b.channels
    return InvertedResidual(layers, residual=residual, attr="conv" if spec.version == "v2" else "block")


class MobileNet(ZooModule):
    def __init__(self, spec: MobileNetSpec) -> None:
        super().__init__(spec)
        parts: list[nn.Module] = [conv_norm_act(spec, spec.in_channels, spec.stem_width, kernel=3, stride=2,
                                                act=spec.stem_activation)]
        parts += [mobile_block(spec, c_in, b) for c_in, b in zip(spec.block_inputs(), spec.blocks)]
        parts.append(conv_norm_act(spec, spec.blocks[-1].channels, spec.last_width, kernel=1,
                                   act=spec.last_activation))
        self.features = nn.Sequential(*parts)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        head: list[nn.Module] = []
        if spec.hidden_width:  # V3: linear -> activation -> dropout -> linear
            head += [nn.Linear(spec.last_width, spec.hidden_width),
                     activation(spec.last_activation, inplace=True)]
        head.append(nn.Dropout(spec.dropout))
        head.append(nn.Linear(spec.features, spec.num_classes) if spec.num_classes else nn.Identity())
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def build(spec: MobileNetSpec) -> MobileNet:
    return MobileNet(spec)
