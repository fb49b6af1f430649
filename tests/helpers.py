"""What several test files share: backend lists, padded token batches, the smallest variants."""

from __future__ import annotations

import functools

import numpy as np

import nnzoo
from nnzoo.specs.base import Spec

BACKENDS = ("torch", "keras")


def padded(sequences: list[np.ndarray], pad: int) -> np.ndarray:
    """Right-pad 1-D id arrays to one (batch, time) int64 array."""
    out = np.full((len(sequences), max(map(len, sequences))), pad, dtype=np.int64)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out


def sequences(spec: Spec, lengths: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    """Token sequences of the given lengths, drawn as the spec draws its examples."""
    x = spec.replace(seq_len=max(lengths)).example_input(len(lengths), seed)
    return [row[:n] for row, n in zip(x, lengths)]


@functools.cache
def smallest(family: str) -> str:
    """The family's variant with the fewest parameters (counted on the meta device)."""
    return min(nnzoo.list_models(family=family), key=lambda n: nnzoo.flops(n).params)
