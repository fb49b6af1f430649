"""ResNet, ResNeXt and Wide ResNet, architecture-identical to torchvision's (ResNet v1.5).

The parametrization is torchvision's own, so its constructor arguments read across directly:
`layers` is its `layers`, `groups` its `groups`, `base_width` its `width_per_group`. A bottleneck
stage of width `w` (torchvision's `planes`) runs its grouped 3x3 convolution on
`w * base_width / 64 * groups` channels and outputs `4 * w`; so ResNeXt-50 32x4d is `groups=32,
base_width=4` and Wide ResNet-50-2 (twice the inner width) is `base_width=128`. A basic block
outputs `w` and has no inner width, hence `groups=1, base_width=64` (torchvision refuses others).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nnzoo.specs.base import ImageSpec

#: Output channels per stage width: a bottleneck expands its width four times.
EXPANSION = {"basic": 1, "bottleneck": 4}


@dataclass(frozen=True, kw_only=True)
class ResNetSpec(ImageSpec):
    """A ResNet classifier on (batch, in_channels, H, W) images of any size (global average pool).

    stem: "imagenet" is torchvision's 7x7/2 convolution and 3x3/2 max-pool (a 224 image reaches
    the first stage at 56x56); "cifar" is a 3x3/1 convolution with no pool, for 32x32 inputs.
    Stages 2.. halve the resolution on their first block (on the 3x3 convolution: v1.5).
    `image_size` only sets the example input; `num_classes=0` returns the pooled features.
    """

    family = "resnet"

    block: Literal["basic", "bottleneck"] = "basic"
    layers: tuple[int, ...] = (2, 2, 2, 2)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    groups: int = 1
    base_width: int = 64
    stem: Literal["imagenet", "cifar"] = "imagenet"
    stem_width: int = 64
    in_channels: int = 3
    image_size: tuple[int, int] = (224, 224)
    num_classes: int = 1000
    conv_bias: bool = False
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1

    def validate(self) -> None:
        self.require(len(self.layers) > 0, "layers", "needs at least one stage (blocks per stage)")
        self.require_positive("layers", "widths", "groups", "stem_width")
        self.require(len(self.widths) == len(self.layers), "widths",
                     f"needs one width per stage ({len(self.layers)} stages in layers)")
        if self.block == "basic":
            self.require(self.groups == 1, "groups",
                         "must be 1 for basic blocks (grouped convolutions need bottlenecks)")
            self.require(self.base_width == 64, "base_width",
                         "must be 64 for basic blocks (only bottlenecks have an inner width)")
        else:
            # The inner width per group is width * base_width / 64; torchvision would silently
            # truncate a fraction, which changes the network. Refuse it instead.
            bad = [w for w in self.widths if (w * self.base_width) % 64]
            self.require(not bad, "base_width",
                         f"width * base_width must be a multiple of 64 for every stage width "
                         f"(not for {bad}): the grouped 3x3 convolution would not split evenly "
                         f"into {self.groups} groups")

    # ---- derived sizes, shared by both builds ----------------------------------------------------
    @property
    def expansion(self) -> int:
        return EXPANSION[self.block]

    def inner_width(self, width: int) -> int:
        """Channels of a bottleneck's grouped 3x3 convolution in a stage of `width`."""
        return width * self.base_width // 64 * self.groups

    def stage_stride(self, stage: int) -> int:
        return 1 if stage == 0 else 2

    @property
    def pooled_width(self) -> int:
        """Width of the pooled feature vector (the output when num_classes=0)."""
        return self.widths[-1] * self.expansion

    # ---- input and output ------------------------------------------------------------------------
    #: Global average pooling: any height and width (>= 1) works.
    flexible_size = True

    def quick(self) -> ResNetSpec:
        """64x64 (32x32 with the small stem): the last stage still sees a 2x2 map or larger."""
        side = 64 if self.stem == "imagenet" else 32
        return self.replace(image_size=(min(self.image_size[0], side), min(self.image_size[1], side)))


SPEC = ResNetSpec

_basic = ResNetSpec(block="basic", layers=(2, 2, 2, 2))
_bottleneck = ResNetSpec(block="bottleneck", layers=(3, 4, 6, 3))


def _torchvision(spec: ResNetSpec, what: str, params: int) -> tuple[ResNetSpec, str, dict[str, int]]:
    """A torchvision variant: its description and its published trainable count (1000 classes)."""
    return spec, f"{what} (torchvision's layout, names and counts: {params:,} params)", {
        "trainable": params}


VARIANTS = {
    "resnet18": _torchvision(_basic, "ResNet-18, basic blocks [2, 2, 2, 2]", 11_689_512),
    "resnet34": _torchvision(_basic.replace(layers=(3, 4, 6, 3)),
                             "ResNet-34, basic blocks [3, 4, 6, 3]", 21_797_672),
    "resnet50": _torchvision(_bottleneck, "ResNet-50 v1.5, bottlenecks [3, 4, 6, 3]", 25_557_032),
    "resnet101": _torchvision(_bottleneck.replace(layers=(3, 4, 23, 3)),
                              "ResNet-101 v1.5, bottlenecks [3, 4, 23, 3]", 44_549_160),
    "resnet152": _torchvision(_bottleneck.replace(layers=(3, 8, 36, 3)),
                              "ResNet-152 v1.5, bottlenecks [3, 8, 36, 3]", 60_192_808),
    "resnext50_32x4d": _torchvision(_bottleneck.replace(groups=32, base_width=4),
                                    "ResNeXt-50 32x4d, 32 groups of width 4", 25_028_904),
    "resnext101_32x8d": _torchvision(
        _bottleneck.replace(layers=(3, 4, 23, 3), groups=32, base_width=8),
        "ResNeXt-101 32x8d, 32 groups of width 8", 88_791_336),
    "wide_resnet50_2": _torchvision(_bottleneck.replace(base_width=128),
                                    "Wide ResNet-50-2, bottlenecks twice as wide inside", 68_883_240),
    "wide_resnet101_2": _torchvision(
        _bottleneck.replace(layers=(3, 4, 23, 3), base_width=128),
        "Wide ResNet-101-2, bottlenecks twice as wide inside", 126_886_696),
    "resnet34_seed": (
        _basic.replace(layers=(3, 4, 6, 3), conv_bias=True, num_classes=10),
        "ResNet-34 with biased convolutions and 10 classes (seeds/000 ResNetPyTorch: 21,298,314 "
        "params; the seed's stem omits the ReLU after bn1, nnzoo keeps it)",
        {"trainable": 21_298_314},
    ),
    "resnet18_cifar": (
        _basic.replace(stem="cifar", image_size=(32, 32), num_classes=10),
        "ResNet-18 with the small-image 3x3 stem and no max-pool, for 32x32 inputs, 10 classes",
    ),
}
