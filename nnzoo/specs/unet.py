"""U-Net: an encoder of double 3x3 convolutions and 2x2 max-pools, a mirrored decoder that
up-samples and concatenates the encoder's feature map of the same size, and a 1x1 head that
gives per-pixel logits at the input's height and width.

Channel plan (base width b, depth d): encoder stage i has b * 2**i channels (i = 0..d; stage d is
the bottleneck). Decoder step j up-samples from c = b * 2**(d - j) to c // 2 channels, concatenates
the skip (also c // 2), and a double convolution brings the c channels back to c // 2. Every
stage's channel count is therefore fixed by b and d, so the decoder always lines up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from nnzoo.errors import InputShapeError
from nnzoo.specs.base import Activation, ImageSpec, IOKind


@dataclass(frozen=True, kw_only=True)
class UNetSpec(ImageSpec):
    """Per-pixel classifier on (batch, in_channels, H, W) images; H and W multiples of 2**depth.

    `image_size` only sets the size of example inputs: any H, W divisible by 2**depth is accepted.
    `conv_bias=None` (the default) puts a bias on the 3x3 convolutions exactly when no batch norm
    follows them (a bias before batch norm is cancelled by the mean subtraction); the up-sampling
    convolution and the 1x1 head always have a bias, since nothing normalizes after them.
    `upsample="transpose"` is a 2x2 stride-2 transposed convolution; `"bilinear"` is a x2 bilinear
    resize with half-pixel centres (PyTorch `align_corners=False`, Keras `UpSampling2D`'s
    bilinear) followed by a 3x3 convolution, each halving the channels.
    """

    family = "unet"
    #: Per-pixel logits: there is no pooled vector to return without a head.
    min_classes: ClassVar[int] = 1
    #: Any height and width that are multiples of 2**depth (checked in `check_input_shape`).
    flexible_size = True

    in_channels: int = 3
    num_classes: int = 2
    base_width: int = 64
    depth: int = 4
    norm: Literal["batch", "none"] = "batch"
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    conv_bias: bool | None = None
    activation: Activation = "relu"
    upsample: Literal["transpose", "bilinear"] = "transpose"
    image_size: tuple[int, int] = (64, 64)

    def validate(self) -> None:
        self.require(self.depth <= 8, "depth", "must be in [1, 8]")
        step = self.multiple
        self.require(
            all(s % step == 0 for s in self.image_size),
            "image_size",
            f"height and width must be multiples of 2**depth = {step} (depth={self.depth})",
        )

    @property
    def multiple(self) -> int:
        """Height and width must be divisible by this (every pooling halves them exactly)."""
        return 2**self.depth

    @property
    def block_bias(self) -> bool:
        """Whether the 3x3 convolutions of the double blocks carry a bias."""
        return self.norm == "none" if self.conv_bias is None else self.conv_bias

    def widths(self) -> tuple[int, ...]:
        """Channels of encoder stages 0..depth (the last one is the bottleneck)."""
        return tuple(self.base_width * 2**i for i in range(self.depth + 1))

    # ---- input and output ---------------------------------------------------------------------
    @property
    def output_kind(self) -> IOKind:
        return "image"

    def output_shape(self, batch: int = 2) -> tuple[int, ...]:
        return (batch, self.num_classes, *self.image_size)

    def check_input_shape(self, shape: tuple[int | None, ...], *, channels_last: bool) -> None:
        """Channels must match; H and W are free but must be multiples of 2**depth."""
        super().check_input_shape(shape, channels_last=channels_last)
        spatial = shape[1:3] if channels_last else shape[2:4]
        bad = [s for s in spatial if s is not None and s % self.multiple]
        if bad:
            raise InputShapeError(
                f"unet with depth={self.depth} needs height and width divisible by "
                f"2**depth = {self.multiple} (e.g. {self.image_size[0]}x{self.image_size[1]}); "
                f"got input of shape {tuple(shape)}"
            )


SPEC = UNetSpec

VARIANTS = {
    "unet": (
        UNetSpec(),
        "U-Net (Ronneberger et al. 2015) with same-padded convs and batch norm: base width 64, "
        "depth 4, transposed-conv up-sampling, 3 -> 2 classes",
    ),
    "unet_small": (
        UNetSpec(base_width=16, image_size=(32, 32)),
        "the same U-Net at base width 16 (fast: for tests and demos)",
    ),
}
