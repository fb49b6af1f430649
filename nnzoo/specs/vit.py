"""Vision Transformer (Dosovitskiy et al. 2020), laid out exactly like torchvision's.

An image is cut into patch_size x patch_size patches by a strided convolution, the patches become
tokens (row-major: top row first, left to right), a learned class token is prepended, learned
position embeddings are added, and a stack of pre-norm transformer blocks runs over the tokens.
The class token's final state (or, with `class_token=False`, the mean of all tokens after the
final layer norm) feeds the linear head.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnzoo.specs.base import Activation, ImageSpec


@dataclass(frozen=True, kw_only=True)
class ViTSpec(ImageSpec):
    """A ViT classifier on (batch, in_channels, *image_size) images.

    The position embeddings have one row per patch (plus one for the class token), so
    `image_size` is fixed at build time; overriding it (`image_size=28` for a cheap check of
    ViT-H/14, say) resizes them, which changes the parameter count by embed_dim per patch.
    `ln_eps` defaults to torchvision's 1e-6, not PyTorch's 1e-5. `class_token=False` drops the
    token and classifies the mean of all patch tokens after the final layer norm.
    """

    family = "vit"

    image_size: tuple[int, int] = (224, 224)
    patch_size: int = 16
    in_channels: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_dim: int = 3072
    dropout: float = 0.0
    attention_dropout: float = 0.0
    ln_eps: float = 1e-6
    activation: Activation = "gelu"
    class_token: bool = True
    num_classes: int = 1000

    def validate(self) -> None:
        self.require(self.embed_dim % self.num_heads == 0, "num_heads",
                     f"must divide embed_dim={self.embed_dim}")
        h, w = self.image_size
        self.require(h % self.patch_size == 0 and w % self.patch_size == 0, "image_size",
                     f"height and width must be multiples of patch_size={self.patch_size}")

    @property
    def grid(self) -> tuple[int, int]:
        """Patches along height and width."""
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @property
    def seq_length(self) -> int:
        """Tokens the encoder sees: one per patch, plus the class token."""
        gh, gw = self.grid
        return gh * gw + int(self.class_token)

    # ---- input and output ---------------------------------------------------------------------
    @property
    def pooled_width(self) -> int:
        """The class token's final state (or the mean token) is embed_dim wide."""
        return self.embed_dim

    def quick(self) -> ViTSpec:
        """A 2x2 grid of patches: every layer runs; the position table shrinks to 4 (+1) rows."""
        return self.replace(image_size=(2 * self.patch_size, 2 * self.patch_size))


SPEC = ViTSpec


def _vit(patch: int, width: int, depth: int, heads: int, mlp: int) -> ViTSpec:
    return ViTSpec(patch_size=patch, embed_dim=width, depth=depth, num_heads=heads, mlp_dim=mlp)


def _published(spec: ViTSpec, source: str, params: int) -> tuple[ViTSpec, str, dict[str, int]]:
    """A variant with its source's trainable count (224x224, 1000 classes)."""
    return spec, f"{source}: {params:,} params at 224x224 and 1000 classes", {"trainable": params}


VARIANTS = {
    "vit_ti_16": _published(_vit(16, 192, 12, 3, 768),
                            "ViT-Ti/16, DeiT-tiny's sizes (width 192, 3 heads, 12 deep)", 5_717_416),
    "vit_s_16": _published(_vit(16, 384, 12, 6, 1536),
                           "ViT-S/16, DeiT-small's sizes (width 384, 6 heads, 12 deep)", 22_050_664),
    "vit_b_16": _published(_vit(16, 768, 12, 12, 3072), "torchvision's vit_b_16", 86_567_656),
    "vit_b_32": _published(_vit(32, 768, 12, 12, 3072), "torchvision's vit_b_32", 88_224_232),
    "vit_l_16": _published(_vit(16, 1024, 24, 16, 4096), "torchvision's vit_l_16", 304_326_632),
    "vit_l_32": _published(_vit(32, 1024, 24, 16, 4096), "torchvision's vit_l_32", 306_535_400),
    "vit_h_14": _published(_vit(14, 1280, 32, 16, 5120), "torchvision's vit_h_14", 632_045_800),
}
