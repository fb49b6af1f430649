"""Seeded PyTorch builds draw from their own generator (nnzoo/torch_impl/rng.py): other threads'
draws cannot move their weights, and they neither read nor move PyTorch's global generator."""

from __future__ import annotations

import threading

import numpy as np
from helpers import weights_digest

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
