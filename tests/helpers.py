"""What several test files share: backend lists, padded token batches, the smallest variants."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import numpy as np
import pytest

import nnzoo
from nnzoo.specs.base import Spec

BACKENDS = ("torch", "keras")


def weights_digest(model: object) -> str:
    """A digest of every weight of a model of either backend, keys included (one hex string)."""
    from nnzoo.conversion import state_dict

    digest = hashlib.sha256()
    for key, value in sorted(state_dict(model).items()):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


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


def randomized(model: object) -> object:
    """A torchvision reference with non-trivial weights, in place (torchvision zero-initializes
    ViT's head and class token and starts ConvNeXt's layer scale at 1e-6, hiding layers)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # type: ignore[attr-defined]
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model


def assert_loads_strictly(ref: object, spec: Spec, batch: int = 2) -> None:
    """`ref`'s state dict loads strictly into the nnzoo PyTorch build of `spec`, and both nnzoo
    builds (Keras through the converter) give `ref`'s outputs."""
    import torch

    from nnzoo.conversion import transfer_weights
    from nnzoo.runtime import run

    ours = nnzoo.build(spec, "torch")
    ours.load_state_dict(ref.state_dict(), strict=True)  # type: ignore[attr-defined]
    x = spec.example_input(batch)
    want = ref(torch.from_numpy(x)).detach().numpy()  # type: ignore[operator]
    bound = 1e-5 * np.abs(want).max()
    np.testing.assert_allclose(run(ours, x), want, rtol=0, atol=bound)
    keras_model = nnzoo.build(spec, "keras")
    transfer_weights(ours, keras_model)
    np.testing.assert_allclose(run(keras_model, x), want, rtol=0, atol=bound)


def keras_draws(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Records every random draw Keras's backend makes from here on (its initialisers'
    uniform, normal and truncated normal): the list a test expects to stay empty."""
    from keras.src.backend import random as keras_random

    draws: list[tuple] = []
    for name in ("uniform", "normal", "truncated_normal"):
        real = getattr(keras_random, name)
        monkeypatch.setattr(keras_random, name,
                            lambda *a, real=real, **k: draws.append(a) or real(*a, **k))
    return draws


#: (channels, kernel size, layers) of a float64 depthwise chain whose gradient XLA's CPU compiler
#: computes through dense C x C kernels by default: channels^2 * k^2 * 8 bytes of scratch a layer.
DEPTHWISE_CHAIN = (256, 5, 12)


def depthwise_chain() -> tuple[Callable, list, object]:
    """The loss of DEPTHWISE_CHAIN (JAX), its kernels and an input. JAX's x64 mode must be on."""
    import jax

    channels, k, depth = DEPTHWISE_CHAIN

    def loss(kernels: list, x: jax.Array) -> jax.Array:
        for w in kernels:
            x = jax.numpy.tanh(jax.lax.conv_general_dilated(
                x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=channels))
        return (x ** 2).sum()

    kernels = [jax.random.normal(jax.random.key(i), (k, k, 1, channels), "float64") * 0.1
               for i in range(depth)]
    return loss, kernels, jax.random.normal(jax.random.key(depth), (2, 8, 8, channels), "float64")


def depthwise_scratch(jit: Callable) -> int:
    """Bytes of scratch XLA plans for the gradient of DEPTHWISE_CHAIN as compiled by `jit`
    (`jax.jit`, `nnzoo.xla.xla_jit`). JAX's x64 mode must be on."""
    import jax

    loss, kernels, x = depthwise_chain()
    return jit(jax.grad(loss)).lower(kernels, x).compile().memory_analysis().temp_size_in_bytes
