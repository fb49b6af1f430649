"""MobileNetV2 and MobileNetV3 (Sandler et al. 2018; Howard et al. 2019), architecture-identical
to torchvision's.

A stride-2 3x3 stem, then a row of inverted residual blocks -- an optional 1x1 expansion, a
depthwise kx k convolution, an optional squeeze-and-excitation, a linear 1x1 projection, and the
residual add when the block keeps its size -- a 1x1 convolution, global average pooling and the
classifier. Each block is one `MBBlock` row, as in the papers' tables; the module paths are
torchvision's (`features.3.conv.1.0` in V2, `features.4.block.2.fc1` in V3), so its state dicts
load strictly. `version` picks torchvision's class and with it the block layout:

  v2  the block's layers are `conv`: its projection is a bare convolution and batch norm
      (`conv.2`, `conv.3`), and V2 has no squeeze-and-excitation;
  v3  they are `block`: every step is a conv-norm-activation group (`block.3.0`, `block.3.1`).

The block's activation, its squeeze-and-excitation and the head are spec values, never a
framework's default: V3's squeeze width is `make_divisible(expanded // se_reduction,
se_divisor)`, its inner activation ReLU and its gate the hard sigmoid relu6(x + 3) / 6, which
PyTorch's `Hardsigmoid` and Keras 3's `hard_sigmoid` both compute (Keras 2's was
clip(0.2 x + 0.5)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nnzoo.specs.base import ImageSpec, Part

#: The activations of MobileNet's blocks and head (relu6: V2; relu and hardswish: V3).
MobileActivation = Literal["relu6", "relu", "hardswish"]


def make_divisible(value: float, divisor: int) -> int:
    """The nearest multiple of `divisor` to `value`, at least `divisor`, and never more than
    10% below `value` -- torchvision's (and the TF reference's) channel rounding."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True, kw_only=True)
class MBBlock(Part):
    """One inverted residual block: `expanded` channels inside (equal to its input's: no 1x1
    expansion layer), `channels` out, a depthwise `kernel` x `kernel` convolution of `stride`."""

    channels: int
    expanded: int
    kernel: int = 3
    stride: int = 1
    se: bool = False
    activation: MobileActivation = "relu6"


@dataclass(frozen=True, kw_only=True)
class MobileNetSpec(ImageSpec):
    """A MobileNet classifier on (batch, in_channels, H, W) images of any size (global pooling).

    `stem_width` channels from the stem (`stem_activation`), then `blocks`, then a 1x1
    convolution to `last_width` (`last_activation`). The head is V2's dropout and linear layer
    when `hidden_width` is 0, and V3's linear layer to `hidden_width`, `last_activation`,
    dropout and linear layer otherwise. `num_classes=0` returns the pooled features (V3: after
    its hidden layer). Batch-norm eps and momentum are torchvision's per version (V2 1e-5 and
    0.1, V3 1e-3 and 0.01; momentum in PyTorch's convention).
    """

    family = "mobilenet"

    version: Literal["v2", "v3"] = "v2"
    blocks: tuple[MBBlock, ...]
    stem_width: int = 32
    stem_activation: MobileActivation = "relu6"
    last_width: int = 1280
    last_activation: MobileActivation = "relu6"
    hidden_width: int = 0
    se_reduction: int = 4
    se_divisor: int = 8
    dropout: float = 0.2
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    in_channels: int = 3
    image_size: tuple[int, int] = (224, 224)
    num_classes: int = 1000

    def validate(self) -> None:
        self.require(len(self.blocks) > 0, "blocks", "needs at least one MBBlock")
        self.require_positive("stem_width", "last_width", "se_reduction", "se_divisor")
        self.require(self.hidden_width >= 0, "hidden_width", "must be >= 0 (0: V2's one-layer head)")
        for i, b in enumerate(self.blocks):
            where = f"blocks[{i}]"
            self.require(min(b.channels, b.expanded) >= 1, "blocks",
                         f"{where}: channels and expanded must be >= 1")
            self.require(b.kernel >= 1 and b.kernel % 2 == 1, "blocks",
                         f"{where}: kernel must be odd (padding (k - 1) / 2 keeps the size)")
            self.require(b.stride in (1, 2), "blocks", f"{where}: stride must be 1 or 2")
            self.require(not (b.se and self.version == "v2"), "blocks",
                         f"{where}: se needs version 'v3' (torchvision's V2 block has none)")

    # ---- derived sizes, shared by both builds ----------------------------------------------------
    def block_inputs(self) -> list[int]:
        """The input width of each block: the stem's, then each block's predecessor's."""
        return [self.stem_width] + [b.channels for b in self.blocks[:-1]]

    def squeeze_width(self, block: MBBlock) -> int:
        """The squeeze-and-excitation's inner width (V3: of the expanded channels, rounded to 8)."""
        return make_divisible(block.expanded // self.se_reduction, self.se_divisor)

    @property
    def pooled_width(self) -> int:
        return self.last_width

    @property
    def features(self) -> int:
        return self.hidden_width or self.last_width

    # ---- input and output ------------------------------------------------------------------------
    #: Global average pooling: any height and width work.
    flexible_size = True

    def quick(self) -> MobileNetSpec:
        """64x64: after the five stride-2 steps the last blocks still see a 2x2 map. (At 1x1, batch
        norm in training normalizes each channel over the batch's two values alone, and its
        gradient is ill-conditioned: measured 2.5e-5 apart in float64 on EfficientNet-B0.)"""
        return self.replace(image_size=(min(self.image_size[0], 64), min(self.image_size[1], 64)))


SPEC = MobileNetSpec


def _v2_blocks() -> tuple[MBBlock, ...]:
    """MobileNetV2's table (expansion t, channels c, repeats n, first stride s) as block rows."""
    rows = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1)]
    blocks, width = [], 32
    for t, c, n, s in rows:
        for i in range(n):
            blocks.append(MBBlock(channels=c, expanded=width * t, stride=s if i == 0 else 1))
            width = c
    return tuple(blocks)


def _v3(rows: list[tuple[int, int, int, bool, str, int]]) -> tuple[MBBlock, ...]:
    """MobileNetV3 rows (kernel, expanded, out, squeeze-excite, RE/HS, stride), as its tables."""
    act = {"RE": "relu", "HS": "hardswish"}
    return tuple(MBBlock(kernel=k, expanded=e, channels=c, se=se, activation=act[a], stride=s)
                 for k, e, c, se, a, s in rows)


_LARGE = _v3([
    (3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1),
])
_SMALL = _v3([
    (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1),
])


def _v3_spec(blocks: tuple[MBBlock, ...], hidden: int) -> MobileNetSpec:
    """V3's stem (16, hardswish), its last 1x1 convolution (6x the last block's width), its
    hidden head layer and batch norm (eps 1e-3, momentum 0.01)."""
    return MobileNetSpec(version="v3", blocks=blocks, stem_width=16, stem_activation="hardswish",
                         last_width=6 * blocks[-1].channels, last_activation="hardswish",
                         hidden_width=hidden, bn_eps=1e-3, bn_momentum=0.01)


def _torchvision(spec: MobileNetSpec, what: str, params: int) -> tuple[MobileNetSpec, str, dict[str, int]]:
    return spec, f"{what} (torchvision's layout, names and counts: {params:,} params)", {
        "trainable": params}


VARIANTS = {
    "mobilenet_v2": _torchvision(MobileNetSpec(blocks=_v2_blocks()),
                                 "MobileNetV2, width 1.0, 17 inverted residual blocks", 3_504_872),
    "mobilenet_v3_large": _torchvision(_v3_spec(_LARGE, 1280),
                                       "MobileNetV3-Large, 15 blocks, hard-swish, SE", 5_483_032),
    "mobilenet_v3_small": _torchvision(_v3_spec(_SMALL, 1024),
                                       "MobileNetV3-Small, 11 blocks, hard-swish, SE", 2_542_856),
}
