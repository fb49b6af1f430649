"""Seeded builds draw from their own generator: PyTorch's a private `torch.Generator`
(nnzoo/torch_impl/rng.py), Keras's a private numpy stream (nnzoo/keras_impl/rng.py). Other
threads' draws cannot move their weights, and no global generator decides them."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import keras_draws, weights_digest

import nnzoo
from conftest import tiny_per_family
from nnzoo.conversion import state_dict


def _digest(spec: nnzoo.Spec) -> str:
    return weights_digest(nnzoo.build(spec, "torch", seed=0))


def test_seeded_builds_leave_the_global_generator_alone() -> None:
    """Every family's seeded build, with the global generator in a known state: the state is
    unchanged after (a draw that `rng.DRAWS` misses would move it), and unseeded builds do move it
    (so the check can fail)."""
    import torch

    specs = tiny_per_family()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    for spec in specs:
        nnzoo.build(spec, "torch", seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    nnzoo.build(specs[0], "torch")
    assert not torch.equal(torch.get_rng_state(), before)


def test_the_private_stream_is_the_one_manual_seed_gave() -> None:
    """A fresh generator seeded with `seed` is the global one's stream under `torch.manual_seed`:
    the weights of a seeded build are what seeding the global generator gave before."""
    import torch

    spec = tiny_per_family()[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = nnzoo.backends.impl("torch", spec.family).build(spec)
    want = state_dict(model)
    got = state_dict(nnzoo.build(spec, "torch", seed=5))
    assert want.keys() == got.keys()
    assert all(np.array_equal(want[k], got[k]) for k in want)


def test_unseeded_torch_builds_follow_manual_seed() -> None:
    """Without a seed, PyTorch's global generator decides, as for any PyTorch module."""
    import torch

    spec = tiny_per_family()[0]
    digests = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        digests.append(weights_digest(nnzoo.build(spec, "torch")))
    assert digests[0] == digests[1] != digests[2]


def test_a_thread_drawing_all_along_does_not_move_seeded_weights() -> None:
    import torch

    specs = tiny_per_family()
    alone = [_digest(spec) for spec in specs]
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            torch.rand(256)
            torch.nn.init.kaiming_uniform_(torch.empty(16, 16))

    noise = threading.Thread(target=draw)
    noise.start()
    try:
        busy = [_digest(spec) for spec in specs]
    finally:
        stop.set()
        noise.join()
    assert busy == alone


#: mlp_small's Keras weights under seed 0 (numpy's uniform and zeros/ones only: the same bits on
#: every machine). Each Keras backend's pass checks it, so all three build exactly these.
MLP_SMALL_KERAS_SEED_0 = "d53f0ac28989d55e68cd81534ea1740018b28340b8043fd9c9f9298ecb53b661"


@pytest.mark.keras
def test_keras_seeded_weights_are_the_same_on_every_keras_backend() -> None:
    model = nnzoo.build("mlp_small", "keras", seed=0)
    assert weights_digest(model) == MLP_SMALL_KERAS_SEED_0


@pytest.mark.keras
def test_keras_seeded_builds_repeat_whatever_the_global_generators_hold(monkeypatch) -> None:
    """Every family: the same seed gives the same Keras weights whatever Python's and numpy's
    global generators hold, another seed other weights, and numpy draws every random initial
    value (no family falls back to Keras's own draw, which compiles per shape on JAX)."""
    from keras.src.initializers.random_initializers import RandomInitializer

    from nnzoo.keras_impl import rng

    missed = []

    def draw(init, shape, generator):  # noqa: ANN001, ANN202
        value = original(init, shape, generator)
        if value is None and isinstance(init, RandomInitializer):
            missed.append(type(init).__name__)
        return value

    original = rng._draw
    monkeypatch.setattr(rng, "_draw", draw)
    specs = tiny_per_family()
    random.seed(1)
    np.random.seed(1)
    first = [weights_digest(nnzoo.build(spec, "keras", seed=0)) for spec in specs]
    random.seed(2)
    np.random.seed(2)
    assert [weights_digest(nnzoo.build(spec, "keras", seed=0)) for spec in specs] == first
    assert weights_digest(nnzoo.build(specs[0], "keras", seed=1)) != first[0]
    assert not missed, f"drawn by Keras, not numpy: {sorted(set(missed))}"


@pytest.mark.keras
def test_a_thread_drawing_all_along_does_not_move_seeded_keras_weights() -> None:
    """Python's and numpy's global generators, drawn from by another thread during the builds
    (what moved the seeds of Keras's own initialisers before)."""
    specs = tiny_per_family()[:3]
    alone = [weights_digest(nnzoo.build(spec, "keras", seed=0)) for spec in specs]
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            random.random()
            np.random.standard_normal(64)

    noise = threading.Thread(target=draw)
    noise.start()
    try:
        busy = [weights_digest(nnzoo.build(spec, "keras", seed=0)) for spec in specs]
    finally:
        stop.set()
        noise.join()
    assert busy == alone


@pytest.mark.keras
def test_unseeded_keras_builds_and_loads_follow_set_random_seed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unseeded Keras build, and the load of a `.keras` file, draw like a seeded build from a
    seed that Python's `random` gives: `keras.utils.set_random_seed` makes them repeat (as it does
    Keras's own builds), and Keras's own draws are never made (on JAX each would compile)."""
    import keras

    draws = keras_draws(monkeypatch)
    spec = next(s for s in tiny_per_family() if s.family == "resnet")
    digests = []
    for seed in (3, 3, 4):
        keras.utils.set_random_seed(seed)
        digests.append(weights_digest(nnzoo.build(spec, "keras")))
    assert digests[0] == digests[1] != digests[2]
    model = nnzoo.build(spec, "keras", seed=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert weights_digest(loaded) == weights_digest(model)
    assert draws == []


def test_numpy_draws_follow_kerass_own_initialisers() -> None:
    """Each initialiser nnzoo draws itself, against Keras's own draw of the same shape: the same
    mean and spread (2% on 65,536 values), the same bounds, and orthogonal rows stay orthogonal."""
    import keras

    from nnzoo.keras_impl.rng import _draw
    from nnzoo.runtime import to_numpy

    rng = np.random.default_rng(0)
    shape = (256, 256)
    bounded = [keras.initializers.GlorotUniform(), keras.initializers.HeNormal(),  # truncated
               keras.initializers.TruncatedNormal(0.0, 0.1),
               keras.initializers.RandomUniform(-0.05, 0.05)]
    unbounded = [keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal"),
                 keras.initializers.RandomNormal(0.5, 0.02), keras.initializers.Orthogonal(1.5)]
    for init in bounded + unbounded:
        ours = _draw(init, shape, rng)
        theirs = to_numpy(type(init).from_config({**init.get_config(), "seed": 3})(shape))
        name = type(init).__name__
        assert ours is not None and ours.shape == shape, name
        assert abs(ours.mean() - theirs.mean()) < 0.02 * theirs.std() + 1e-6, name
        assert abs(ours.std() / theirs.std() - 1) < 0.02, name
        if init in bounded:  # the same support: both reach (nearly) the same extremes
            np.testing.assert_allclose([ours.min(), ours.max()], [theirs.min(), theirs.max()],
                                       atol=0.01 * theirs.std(), err_msg=name)
    q = _draw(keras.initializers.Orthogonal(1.0), (64, 32), rng)
    np.testing.assert_allclose(q.T @ q, np.eye(32), atol=1e-12)
