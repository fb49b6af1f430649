"""ConvNeXt (Liu et al. 2022), architecture-identical to torchvision's.

A 4x4/4 patchify stem, then stages of ConvNeXt blocks -- a 7x7 depthwise convolution, a layer
norm over channels, a 4x wide two-layer MLP with exact GELU, a learned per-channel layer scale,
stochastic depth, and the residual add -- with a layer norm and a 2x2/2 convolution between
stages; global average pooling, a layer norm and the linear head. The module paths are
torchvision's (`features.1.0.block.0`, `features.1.0.layer_scale`, `classifier.2`), so its state
dicts load strictly.

`stochastic_depth` is the rate of the last block; block `i` of `n` drops its residual branch
per example with probability `stochastic_depth * i / (n - 1)` in training (torchvision's
linear rule), scaling what it keeps by `1 / (1 - p)`. The parity and training checks set it to
0 (like dropout: two random streams cannot agree), and a test checks that both frameworks drop
at the same rate with the same scaling.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnzoo.specs.base import ImageSpec


@dataclass(frozen=True, kw_only=True)
class ConvNeXtSpec(ImageSpec):
    """A ConvNeXt classifier on (batch, in_channels, H, W) images of any size >= `min_side`.

    `layers[i]` blocks of width `widths[i]` per stage; `layer_scale` is the initial value of
    every block's per-channel scale (torchvision: 1e-6); `ln_eps` is every layer norm's epsilon
    (torchvision: 1e-6, not PyTorch's 1e-5). `num_classes=0` returns the normalized pooled
    features.
    """

    family = "convnext"

    layers: tuple[int, ...] = (3, 3, 9, 3)
    widths: tuple[int, ...] = (96, 192, 384, 768)
    in_channels: int = 3
    image_size: tuple[int, int] = (224, 224)
    num_classes: int = 1000
    layer_scale: float = 1e-6
    stochastic_depth: float = 0.1
    ln_eps: float = 1e-6

    def validate(self) -> None:
        self.require(len(self.layers) > 0, "layers", "needs at least one stage (blocks per stage)")
        self.require_positive("layers", "widths")
        self.require(len(self.widths) == len(self.layers), "widths",
                     f"needs one width per stage ({len(self.layers)} stages in layers)")
        self.require_fraction("stochastic_depth")
        self.require(0.0 < self.layer_scale <= 1e3, "layer_scale",
                     "must be in (0, 1000] (the initial per-channel scale; torchvision: 1e-6)")
        self.require(min(self.image_size) >= self.min_side, "image_size",
                     f"must be >= {self.min_side} on each side: the 4x4/4 stem and each 2x2/2 "
                     f"downsampling need at least one output pixel")

    # ---- derived sizes, shared by both builds ----------------------------------------------------
    @property
    def min_side(self) -> int:
        """The smallest image side every layer takes: the stem divides by 4, each later stage by 2."""
        return 4 * 2 ** (len(self.layers) - 1)

    def block_drop_rate(self, index: int) -> float:
        """Stochastic depth of block `index` (counted over all stages): linear from 0 to the last."""
        total = sum(self.layers)
        return self.stochastic_depth * index / (total - 1) if total > 1 else 0.0

    @property
    def pooled_width(self) -> int:
        return self.widths[-1]

    # ---- input and output ------------------------------------------------------------------------
    #: Global average pooling: any height and width >= min_side work.
    flexible_size = True

    def quick(self) -> ConvNeXtSpec:
        """The smallest input every layer takes (32x32 for four stages: the last stage sees 1x1)."""
        return self.replace(image_size=(self.min_side, self.min_side))


SPEC = ConvNeXtSpec


def _torchvision(spec: ConvNeXtSpec, what: str, params: int) -> tuple[ConvNeXtSpec, str, dict[str, int]]:
    """A torchvision variant: its description and its published trainable count (1000 classes)."""
    return spec, f"{what} (torchvision's layout, names and counts: {params:,} params)", {
        "trainable": params}


_base = ConvNeXtSpec(widths=(128, 256, 512, 1024), layers=(3, 3, 27, 3), stochastic_depth=0.5)

VARIANTS = {
    "convnext_tiny": _torchvision(ConvNeXtSpec(), "ConvNeXt-Tiny, widths 96..768, blocks [3, 3, 9, 3]",
                                  28_589_128),
    "convnext_small": _torchvision(ConvNeXtSpec(layers=(3, 3, 27, 3), stochastic_depth=0.4),
                                   "ConvNeXt-Small, widths 96..768, blocks [3, 3, 27, 3]", 50_223_688),
    "convnext_base": _torchvision(_base, "ConvNeXt-Base, widths 128..1024, blocks [3, 3, 27, 3]",
                                  88_591_464),
}
