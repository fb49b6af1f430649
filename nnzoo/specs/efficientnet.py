"""EfficientNet B0-B7 (Tan and Le 2019), architecture-identical to torchvision's.

MobileNetV2's inverted residual block (`nnzoo/specs/mobilenet.py`) with squeeze-and-excitation
and SiLU everywhere, grouped into seven stages (`features.1` .. `features.7`, block `j` of stage
`s` at `features.<s>.<j>`), stochastic depth on every residual branch, and a 1x1 convolution to
`head_ratio` times the last stage's width before pooling.

**Compound scaling is spec data.** `stages` is B0's table; `width_mult` scales every width
(rounded to a multiple of 8 as torchvision does), `depth_mult` every stage's block count
(rounded up), and the resolution is `image_size`. So B1..B7 are B0's spec with their three
coefficients (and torchvision's dropout and batch norm): `get_spec("efficientnet_b0",
width_mult=1.4, depth_mult=1.8, image_size=380)` is B4's network, and any other point of the
same family is one override away. `nnzoo info` shows what a scaling does to parameters and FLOPs.

Block `k` of `n` (counted over all stages) drops its residual branch with probability
`stochastic_depth * k / n` in training (torchvision's rule here: over n, where ConvNeXt's is over
n - 1); the parity and training checks set it to 0, as for dropout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnzoo.specs.base import ImageSpec, Part
from nnzoo.specs.mobilenet import make_divisible


@dataclass(frozen=True, kw_only=True)
class MBStage(Part):
    """`layers` inverted residual blocks of `channels` out (before width scaling); the first has
    `stride`, the others stride 1. Each expands its input `expand_ratio` times."""

    expand_ratio: int
    kernel: int
    stride: int
    channels: int
    layers: int


#: B0's stages: (expand_ratio, kernel, stride, channels, layers), the paper's Table 1.
B0_STAGES = tuple(MBStage(expand_ratio=e, kernel=k, stride=s, channels=c, layers=n) for e, k, s, c, n in (
    (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4), (6, 3, 1, 320, 1),
))


@dataclass(frozen=True)
class MBConvBlock:
    """One block as both builds make it: its place, widths, kernel, stride and drop rate."""

    stage: int
    index: int
    c_in: int
    expanded: int
    c_out: int
    kernel: int
    stride: int
    squeeze: int
    drop_rate: float

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.c_in == self.c_out


@dataclass(frozen=True, kw_only=True)
class EfficientNetSpec(ImageSpec):
    """An EfficientNet classifier on (batch, in_channels, H, W) images of any size.

    The squeeze-and-excitation's inner width is `max(1, block input // se_reduction)` (of the
    block's input, where MobileNetV3 takes its expanded width and rounds to 8). `num_classes=0`
    returns the pooled features.
    """

    family = "efficientnet"

    stages: tuple[MBStage, ...] = B0_STAGES
    width_mult: float = 1.0
    depth_mult: float = 1.0
    stem_width: int = 32
    head_ratio: int = 4
    se_reduction: int = 4
    stochastic_depth: float = 0.2
    dropout: float = 0.2
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    in_channels: int = 3
    image_size: tuple[int, int] = (224, 224)
    num_classes: int = 1000

    def validate(self) -> None:
        self.require(len(self.stages) > 0, "stages", "needs at least one MBStage")
        self.require_positive("stem_width", "head_ratio", "se_reduction")
        self.require_fraction("stochastic_depth")
        for field in ("width_mult", "depth_mult"):
            self.require(0.0 < getattr(self, field) <= 16.0, field,
                         "must be in (0, 16] (B0: 1.0; B7: width 2.0, depth 3.1)")
        for i, s in enumerate(self.stages):
            where = f"stages[{i}]"
            self.require(min(s.expand_ratio, s.channels, s.layers) >= 1, "stages",
                         f"{where}: expand_ratio, channels and layers must be >= 1")
            self.require(s.kernel >= 1 and s.kernel % 2 == 1, "stages",
                         f"{where}: kernel must be odd (padding (k - 1) / 2 keeps the size)")
            self.require(s.stride in (1, 2), "stages", f"{where}: stride must be 1 or 2")

    # ---- compound scaling, shared by both builds -------------------------------------------------
    def width(self, channels: int) -> int:
        """A width after `width_mult`: the nearest multiple of 8, as torchvision rounds."""
        return make_divisible(channels * self.width_mult, 8)

    def depth(self, layers: int) -> int:
        """A stage's block count after `depth_mult`, rounded up."""
        return int(math.ceil(layers * self.depth_mult))

    def blocks(self) -> list[MBConvBlock]:
        """Every block, stage by stage, with its widths and its stochastic-depth rate."""
        total = sum(self.depth(s.layers) for s in self.stages)
        out, c_in = [], self.width(self.stem_width)
        for i, s in enumerate(self.stages):
            c_out = self.width(s.channels)
            for j in range(self.depth(s.layers)):
                out.append(MBConvBlock(
                    stage=i + 1, index=j, c_in=c_in, expanded=make_divisible(c_in * s.expand_ratio, 8),
                    c_out=c_out, kernel=s.kernel, stride=s.stride if j == 0 else 1,
                    squeeze=max(1, c_in // self.se_reduction),
                    drop_rate=self.stochastic_depth * len(out) / total))
                c_in = c_out
        return out

    @property
    def last_width(self) -> int:
        """The 1x1 convolution before pooling: `head_ratio` x the last stage's width."""
        return self.head_ratio * self.width(self.stages[-1].channels)

    @property
    def pooled_width(self) -> int:
        return self.last_width

    # ---- input and output ------------------------------------------------------------------------
    #: Global average pooling: any height and width work.
    flexible_size = True

    def quick(self) -> EfficientNetSpec:
        """64x64: after the five stride-2 steps the last blocks still see a 2x2 map. (At 1x1, batch
        norm in training normalizes each channel over the batch's two values alone, and its
        gradient is ill-conditioned: measured 2.5e-5 apart in float64 on EfficientNet-B0.)"""
        return self.replace(image_size=(min(self.image_size[0], 64), min(self.image_size[1], 64)))


SPEC = EfficientNetSpec

#: torchvision's coefficients: (width, depth, resolution, dropout), and its published counts.
_SCALING = {
    "b0": (1.0, 1.0, 224, 0.2, 5_288_548),
    "b1": (1.0, 1.1, 240, 0.2, 7_794_184),
    "b2": (1.1, 1.2, 288, 0.3, 9_109_994),
    "b3": (1.2, 1.4, 300, 0.3, 12_233_232),
    "b4": (1.4, 1.8, 380, 0.4, 19_341_616),
    "b5": (1.6, 2.2, 456, 0.4, 30_389_784),
    "b6": (1.8, 2.6, 528, 0.5, 43_040_704),
    "b7": (2.0, 3.1, 600, 0.5, 66_347_960),
}


def _variant(b: str) -> tuple[EfficientNetSpec, str, dict[str, int]]:
    """B0's spec with B`n`'s coefficients; B5-B7 use batch-norm eps 1e-3 and momentum 0.01."""
    w, d, side, dropout, params = _SCALING[b]
    bn = dict(bn_eps=1e-3, bn_momentum=0.01) if b in ("b5", "b6", "b7") else {}
    spec = EfficientNetSpec(width_mult=w, depth_mult=d, image_size=(side, side), dropout=dropout, **bn)
    return spec, (f"EfficientNet-{b.upper()}: width x{w}, depth x{d}, {side}x{side} "
                  f"(torchvision's layout, names and counts: {params:,} params)"), {"trainable": params}


VARIANTS = {f"efficientnet_{b}": _variant(b) for b in _SCALING}
