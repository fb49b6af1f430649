"""MLP: fully connected blocks (Linear -> norm -> activation -> dropout), then a linear head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nnzoo.specs.base import Activation, IOKind, Spec


@dataclass(frozen=True, kw_only=True)
class MLPSpec(Spec):
    """A multi-layer perceptron on (batch, input_size) feature vectors."""

    family = "mlp"

    input_size: int
    hidden_sizes: tuple[int, ...] = (256,)
    activation: Activation = "relu"
    norm: Literal["batch", "layer", "none"] = "none"
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    ln_eps: float = 1e-5
    dropout: float = 0.0
    bias: bool = True
    num_classes: int = 10

    def validate(self) -> None:
        self.require(bool(self.hidden_sizes) or self.num_classes > 0, "num_classes",
                     "must be >= 1 when hidden_sizes is empty (the model would be empty)")

    @property
    def input_kind(self) -> IOKind:
        return "vector"

    def input_shape(self) -> tuple[int, ...]:
        return (self.input_size,)

    @property
    def pooled_width(self) -> int:
        """An MLP pools nothing: its hidden layers start from the input."""
        return self.input_size


SPEC = MLPSpec

VARIANTS = {
    "mlp_784": (
        MLPSpec(input_size=784, hidden_sizes=(512, 256, 128), norm="batch", dropout=0.3,
                num_classes=10),
        "MNIST-sized MLP with batch norm and dropout 0.3 (seeds/000 MLPPyTorch: 569,226 params)",
        {"trainable": 569_226},
    ),
    "mlp_small": (
        MLPSpec(input_size=32, hidden_sizes=(64, 64), activation="gelu", norm="layer",
                num_classes=10),
        "A small GELU + layer-norm MLP for quick checks",
    ),
}
