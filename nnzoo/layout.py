"""Canonical layouts and the mapping to and from Keras's native ones.

Canonical is PyTorch's: images NCHW. Keras builds keep their fast native NHWC; a parity check
maps inputs into Keras layout and Keras outputs back before comparing anything.
"""

from __future__ import annotations

import numpy as np


def to_keras(x: np.ndarray, kind: str) -> np.ndarray:
    """Canonical -> Keras layout (NCHW -> NHWC for images; others unchanged)."""
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if kind == "image" else x


def from_keras(y: np.ndarray, kind: str) -> np.ndarray:
    """Keras -> canonical layout (NHWC -> NCHW for images; others unchanged)."""
    return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if kind == "image" else y


def shape_from_keras(shape: tuple[int, ...], kind: str) -> tuple[int, ...]:
    """`from_keras` for a shape alone."""
    return (shape[0], shape[-1], *shape[1:-1]) if kind == "image" else tuple(shape)
