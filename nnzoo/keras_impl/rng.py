"""Seeded Keras builds: Keras's initialisers take their seeds from Python's global `random`.

An initialiser built without a seed (every layer's default) draws one from Python's `random`
module when it is created, so a Keras build is reproducible by seeding that module -- what
`keras.utils.set_random_seed` does, minus TensorFlow's global seed (which would import
TensorFlow on the JAX and PyTorch backends, and which the initialisers do not read). There is no
private stream to hand a build, as `nnzoo/torch_impl/rng.py` does for PyTorch: nnzoo serialises
its own builds (`FRAMEWORK_LOCK`) and restores the caller's states after, but a user's thread
that draws from Python's `random` or numpy's global generator during a seeded Keras build moves
the seeds the build gets.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import keras
import numpy as np


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside the block, Python's and numpy's global generators (and, on Keras's PyTorch
    backend, PyTorch's) are seeded with `seed`; the caller's states come back after."""
    states = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        if keras.backend.backend() == "torch":
            import torch

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                yield
        else:
            yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
