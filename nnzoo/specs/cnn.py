"""CNN: plain convolutional stages (conv -> norm -> activation -> pool), then a classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nnzoo.specs.base import Activation, ImageSpec, Part


@dataclass(frozen=True, kw_only=True)
class ConvStage(Part):
    """One stage: a (optionally depthwise-separable) convolution, norm, activation, pooling.

    Padding is explicit and symmetric, as in PyTorch; a separable stage is a depthwise
    kernel x kernel convolution followed by a pointwise 1x1 one.
    """

    channels: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1
    separable: bool = False
    pool: Literal["max", "avg", "none"] = "max"
    pool_size: int = 2
    pool_stride: int = 2
    pool_padding: int = 0


def stages_output_size(image_size: tuple[int, int], stages: tuple[ConvStage, ...]) -> tuple[int, int]:
    """The (height, width) of the feature map `stages` make of an `image_size` image."""
    size = list(image_size)
    for s in stages:
        for d in range(2):
            size[d] = (size[d] + 2 * s.padding - s.kernel) // s.stride + 1
            if s.pool != "none":
                size[d] = (size[d] + 2 * s.pool_padding - s.pool_size) // s.pool_stride + 1
    return size[0], size[1]


def check_stages(spec: ImageSpec, stages: tuple[ConvStage, ...]) -> None:
    """The rules of a conv stack (the CNN's, the hybrid's front end): sizes, padding, groups,
    and a feature map of at least 1x1 for `image_size`."""
    spec.require(len(stages) > 0, "stages", "needs at least one ConvStage")
    spec.require_positive("gn_groups")
    for i, s in enumerate(stages):
        where = f"stages[{i}]"
        spec.require(min(s.channels, s.kernel, s.stride, s.pool_size, s.pool_stride) >= 1,
                     "stages", f"{where}: channels, kernel, stride and pool sizes must be >= 1")
        spec.require(0 <= s.padding < s.kernel, "stages",
                     f"{where}: padding must be in [0, kernel)")
        spec.require(0 <= s.pool_padding <= s.pool_size // 2, "stages",
                     f"{where}: pool_padding must be in [0, pool_size // 2]")
        if spec.norm == "group":  # type: ignore[attr-defined]
            spec.require(s.channels % spec.gn_groups == 0, "gn_groups",  # type: ignore[attr-defined]
                         f"must divide every stage's channels ({where} has {s.channels})")
    h, w = stages_output_size(spec.image_size, stages)
    spec.require(h >= 1 and w >= 1, "image_size",
                 f"too small for these stages (feature map would be {h}x{w})")


@dataclass(frozen=True, kw_only=True)
class CNNSpec(ImageSpec):
    """A plain CNN classifier on (batch, in_channels, *image_size) images."""

    family = "cnn"

    in_channels: int = 3
    image_size: tuple[int, int] = (32, 32)
    stages: tuple[ConvStage, ...]
    norm: Literal["batch", "group", "none"] = "batch"
    order: Literal["conv-norm-act", "conv-act-norm"] = "conv-norm-act"
    activation: Activation = "relu"
    conv_bias: bool = True
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    gn_groups: int = 8
    gn_eps: float = 1e-5
    global_pool: Literal["flatten", "avg", "max"] = "flatten"
    hidden_sizes: tuple[int, ...] = ()
    dropout: float = 0.0
    num_classes: int = 10

    def validate(self) -> None:
        check_stages(self, self.stages)

    def feature_size(self) -> tuple[int, int]:
        """Spatial size after the last stage, for `image_size`."""
        return stages_output_size(self.image_size, self.stages)

    @property
    def flexible_size(self) -> bool:  # type: ignore[override]
        """With global pooling any image size works; flattening fixes it."""
        return self.global_pool != "flatten"

    @property
    def pooled_width(self) -> int:
        """The last stage's channels, times its spatial size when flattened."""
        h, w = (1, 1) if self.flexible_size else self.feature_size()
        return self.stages[-1].channels * h * w


SPEC = CNNSpec

_three = tuple(ConvStage(channels=c) for c in (32, 64, 128))
_valid = tuple(ConvStage(channels=c, padding=0, pool="max" if c < 128 else "none")
               for c in (32, 64, 128))

VARIANTS = {
    "cnn_small": (
        CNNSpec(stages=_three, hidden_sizes=(256,), dropout=0.5, num_classes=10),
        "3 conv stages 32-64-128 with batch norm and max-pool, flatten, fc 256 "
        "(seeds/000 CNNPyTorch: 620,810 params)",
        {"trainable": 620_810},
    ),
    "cnn_small_gap": (
        CNNSpec(stages=_valid, order="conv-act-norm", bn_eps=1e-3, bn_momentum=0.01,
                global_pool="avg", hidden_sizes=(256,), dropout=0.5, num_classes=10),
        "valid convs, activation before batch norm, global average pool, dense 256 "
        "(seeds/000 Keras CNN: 129,738 params in total; logits instead of softmax)",
        {"total": 129_738},
    ),
    "cnn_simple": (
        CNNSpec(stages=tuple(ConvStage(channels=c) for c in (64, 128, 256)),
                hidden_sizes=(512,), dropout=0.5, num_classes=10),
        "3 conv stages 64-128-256, flatten, fc 512 (seeds/003 SimpleCNN: 2,474,506 params)",
        {"trainable": 2_474_506},
    ),
    "cnn_separable": (
        CNNSpec(stages=(ConvStage(channels=32, stride=2, pool="none"),
                        ConvStage(channels=64, separable=True),
                        ConvStage(channels=128, separable=True, pool="none")),
                norm="group", gn_groups=8, conv_bias=False, activation="silu",
                global_pool="avg", num_classes=10),
        "a stride-2 stem, depthwise-separable stages, group norm, SiLU, global average pool",
    ),
}
