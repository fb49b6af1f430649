"""Seeded PyTorch builds draw from a private generator, never from PyTorch's global one.

PyTorch's modules initialise their weights in their constructors with `torch.nn.init`, which
draws from the global generator unless it is handed one. Seeding the global generator for a
build (`torch.manual_seed`) makes the build reproducible only while no other thread draws from
it: a user's data loader or training loop in another thread interleaves its draws with the
build's, and the "same seed" gives other weights. So a seeded build runs under a
`TorchFunctionMode` that hands every random draw without an explicit generator the build's own
`torch.Generator`. Function modes are per thread, so other threads keep drawing from the global
generator, untouched; and a fresh CPU generator seeded with `seed` is the same stream as the
global one seeded with it, so the weights are those `torch.manual_seed(seed)` gave before.
`nnzoo/keras_impl/rng.py` is the Keras side (a private numpy stream).

`placeholders` routes the same draws nowhere: each in-place draw writes zeros, for a build whose
every weight is loaded next (`nnzoo.convert`), which then checks that each zero was replaced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.nn import init
from torch.overrides import TorchFunctionMode

#: Every function and method that draws random numbers and takes a `generator`. The initialisers
#: in `torch.nn.init` are listed themselves: a mode sees the outer call, and the draws inside it
#: run with the mode paused. `tests/test_rng.py` checks that building every family leaves
#: the global generator's state untouched, so a draw missing here is found.
DRAWS: frozenset[Any] = frozenset({
    init.uniform_, init.normal_, init.trunc_normal_, init.kaiming_uniform_, init.kaiming_normal_,
    init.xavier_uniform_, init.xavier_normal_, init.orthogonal_, init.sparse_,
    torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.bernoulli_, torch.Tensor.random_,
    torch.Tensor.exponential_, torch.Tensor.geometric_, torch.Tensor.log_normal_,
    torch.Tensor.cauchy_, torch.rand, torch.randn, torch.randint, torch.randperm, torch.normal,
    torch.bernoulli, torch.multinomial, torch.poisson,
})


class PrivateGenerator(TorchFunctionMode):
    """Routes this thread's random draws that name no generator to `generator`."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.generator = generator

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in DRAWS and kwargs.get("generator") is None:
            kwargs["generator"] = self.generator
        return func(*args, **kwargs)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside the block, this thread's weight initialisation draws from a private CPU generator
    seeded with `seed`; the global generator is neither read nor moved."""
    with PrivateGenerator(torch.Generator().manual_seed(seed)):
        yield


@contextlib.contextmanager
def unseeded() -> Iterator[None]:
    """An unseeded build draws from PyTorch's global generator (`torch.manual_seed` seeds it), as
    every PyTorch module's own initialisation does: nothing to route."""
    yield


#: The draws that fill a tensor in place: under `placeholders` they fill it with zeros instead.
IN_PLACE: frozenset[Any] = frozenset(f for f in DRAWS if f.__name__.endswith("_"))


class _Zeros(TorchFunctionMode):
    """Fills with zeros what this thread's in-place draws would have filled; records each."""

    def __init__(self) -> None:
        super().__init__()
        self.zeroed: list[torch.Tensor] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func in IN_PLACE:  # nn.init's functions pass their tensor by keyword
            target = args[0] if args else kwargs["tensor"]
            with torch.no_grad():
                target.zero_()
            self.zeroed.append(target)
            return target
        return func(*args, **kwargs)


@contextlib.contextmanager
def placeholders() -> Iterator[list[torch.Tensor]]:
    """Inside the block, this thread's weight initialisation writes zeros, drawn from no
    distribution, for a build whose every weight is loaded at once (`nnzoo.convert`); yields
    the tensors so filled, for the caller to check that each was loaded. The Keras twin is where
    this pays (no XLA compilation per weight shape on JAX); here it skips the draws."""
    mode = _Zeros()
    with mode:
        yield mode.zeroed
