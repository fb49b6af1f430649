"""Hybrid models: a convolutional front end feeding a sequence model (seeds/000's first task).

The conv stages (the CNN family's `ConvStage`, norm and activation fields) make a feature map
(C, H', W'); `sequence` turns it into steps:

  columns  each of the W' columns is one step of C * H' features, left to right (a text line
           read by a CRNN; the features of a column are ordered channel-major, as PyTorch's
           (C, H') flattens);
  patches  each of the H' * W' positions is one step of C features, row by row (a ViT-style
           token grid from a convolutional stem).

An optional linear projection (`proj_dim`) sets the steps' width; then a recurrent stack
(`rnn`: PyTorch's `nn.LSTM`/`nn.GRU`, optionally bidirectional), then `attention_layers` pre-norm
transformer blocks (torchvision's ViT block) and a final layer norm, either or both. The head
reads every step (`output="steps"`: per-step logits, batch x steps x classes, as a CRNN emits
per column) or their mean (`output="pooled"`: one class vector per image).

The image size is fixed by the spec: the number of steps is part of the output shape (and of the
position table, when there is one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nnzoo.specs.base import Activation, ImageSpec, IOKind
from nnzoo.specs.cnn import ConvStage, check_stages, stages_output_size


@dataclass(frozen=True, kw_only=True)
class HybridSpec(ImageSpec):
    """Conv stages -> steps -> [linear] -> [LSTM/GRU stack] -> [attention blocks] -> head.

    `dropout` acts where PyTorch's modules put it: between stacked recurrent layers
    (`nn.LSTM(dropout=)`) and in the attention blocks (after attention and in the MLP);
    `attention_dropout` on the attention probabilities. `positions` adds a learned position
    table (normal, std 0.02, as ViT's) before the attention blocks.
    """

    family = "hybrid"

    in_channels: int = 1
    image_size: tuple[int, int] = (32, 128)
    stages: tuple[ConvStage, ...]
    norm: Literal["batch", "group", "none"] = "batch"
    order: Literal["conv-norm-act", "conv-act-norm"] = "conv-norm-act"
    activation: Activation = "relu"
    conv_bias: bool = True
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    gn_groups: int = 8
    gn_eps: float = 1e-5
    sequence: Literal["columns", "patches"] = "columns"
    proj_dim: int = 0
    rnn: Literal["lstm", "gru", "none"] = "lstm"
    hidden_size: int = 256
    num_layers: int = 2
    bidirectional: bool = True
    attention_layers: int = 0
    num_heads: int = 4
    mlp_dim: int = 512
    mlp_activation: Activation = "gelu"
    ln_eps: float = 1e-6
    positions: bool = False
    dropout: float = 0.0
    attention_dropout: float = 0.0
    output: Literal["steps", "pooled"] = "steps"
    num_classes: int = 37

    def validate(self) -> None:
        check_stages(self, self.stages)
        self.require(self.proj_dim >= 0, "proj_dim", "must be >= 0 (0: no projection)")
        self.require(self.attention_layers >= 0, "attention_layers",
                     "must be >= 0 (0: no attention blocks)")
        self.require(self.rnn != "none" or self.attention_layers > 0, "rnn",
                     "may be 'none' only with attention_layers >= 1 (a hybrid has a sequence model)")
        if self.attention_layers:
            self.require(self.width % self.num_heads == 0, "num_heads",
                         f"must divide the attention blocks' width {self.width}")
            # One step attends to itself alone: its softmax is 1 whatever the weights, the
            # query and key weights get no gradient (Adam then steps on rounding noise), and
            # Keras warns on every call.
            self.require(self.steps >= 2, "image_size",
                         f"gives {self.steps} step with these stages; attention needs at least 2")
        self.require(not self.positions or self.attention_layers > 0, "positions",
                     "needs attention_layers >= 1 (the table is added before the attention blocks)")

    # ---- derived sizes, shared by both builds ----------------------------------------------------
    def feature_size(self) -> tuple[int, int]:
        """(H', W') of the last stage's feature map."""
        return stages_output_size(self.image_size, self.stages)

    @property
    def steps(self) -> int:
        h, w = self.feature_size()
        return w if self.sequence == "columns" else h * w

    @property
    def step_width(self) -> int:
        """Features per step as the feature map gives them (before `proj_dim`)."""
        c = self.stages[-1].channels
        return c * self.feature_size()[0] if self.sequence == "columns" else c

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def rnn_input(self) -> int:
        return self.proj_dim or self.step_width

    @property
    def width(self) -> int:
        """The width of the steps the attention blocks and the head read."""
        return self.hidden_size * self.directions if self.rnn != "none" else self.rnn_input

    @property
    def pooled_width(self) -> int:
        return self.width

    # ---- input and output ------------------------------------------------------------------------
    @property
    def output_kind(self) -> IOKind:
        return "sequence" if self.output == "steps" else "vector"

    def output_shape(self, batch: int = 2) -> tuple[int, ...]:
        """(batch, steps, classes) per step, (batch, classes) pooled; width instead of classes
        without a head."""
        last = self.num_classes or self.width
        return (batch, self.steps, last) if self.output == "steps" else (batch, last)


SPEC = HybridSpec

# CRNN (Shi, Bai and Yao 2015) on 32-pixel-high text lines: a VGG-style stack, each column of
# its last map (512 channels x 4 rows) linearly mapped to 256 features, two bidirectional LSTM
# layers of 256, and a logit per column for 36 characters and the CTC blank. (The paper pools
# 2x1 late to keep 26 columns of a 100-wide line and a height of 1; nnzoo's ConvStage pools
# squarely, so a 128-wide line gives 16 columns of height 4, and the projection maps them.)
_crnn = (
    ConvStage(channels=64),
    ConvStage(channels=128),
    ConvStage(channels=256, pool="none"),
    ConvStage(channels=256),
    ConvStage(channels=512, pool="none"),
)
# A convolutional stem for a transformer (Xiao et al. 2021, "Early convolutions help
# transformers see better"): stride-2 3x3 convolutions with batch norm instead of a patchify
# layer; three of them turn a 32x32 image into a 4x4 grid of 16 tokens of width 128.
_stem = tuple(ConvStage(channels=c, stride=2, pool="none") for c in (32, 64, 128))

VARIANTS = {
    "crnn": (
        HybridSpec(stages=_crnn, proj_dim=256),
        "CRNN for text lines: 5 conv stages on 1x32x128, 16 columns of 512x4 features mapped "
        "to 256, 2-layer bidirectional LSTM 256, per-column logits for 37 symbols",
    ),
    "conv_transformer": (
        HybridSpec(in_channels=3, image_size=(32, 32), stages=_stem, sequence="patches",
                   rnn="none", attention_layers=4, num_heads=4, mlp_dim=256, positions=True,
                   output="pooled", num_classes=10),
        "conv stem (3 stride-2 convs) on 3x32x32, 16 tokens of width 128, position table, "
        "4 pre-norm transformer blocks, mean pool -> 10 classes",
    ),
}
