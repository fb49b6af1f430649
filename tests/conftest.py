"""Shared fixtures: the registry, the GPU gate, and torchvision as a reference."""

from __future__ import annotations

import functools
import os
import types

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def pytest_configure(config: pytest.Config) -> None:
    # Two threads each, as CI's 2-core machine has; keeps timings honest and avoids oversubscription.
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass


@pytest.fixture(scope="session")
def gpu() -> None:
    """Skip (with the reason) unless PyTorch sees CUDA and TensorFlow sees a GPU."""
    from nnzoo.runtime import gpu_status

    usable, reason = gpu_status()
    if not usable:
        pytest.skip(f"no GPU: {reason}")


@pytest.fixture(scope="session")
def tv_models() -> types.ModuleType:
    """`torchvision.models`, the reference for ResNet and ViT.

    torchvision's PyPI wheel is built against CUDA PyTorch: its compiled operators (nms, ...)
    do not register against the CPU build, and importing them fails. The model definitions are
    pure Python and need none of them, so the meta-registration module is stubbed out first.
    """
    from nnzoo.references import torchvision_models

    try:
        return torchvision_models()
    except ImportError:
        pytest.skip("torchvision (the reference) is not installed")


@functools.cache
def meta_count(name: str) -> int:
    """A model's total parameter count, from a free build on PyTorch's meta device."""
    import torch

    import nnzoo
    from nnzoo import backends
    from nnzoo.runtime import count_params

    with torch.device("meta"):
        return count_params(backends.build_native(nnzoo.get_spec(name), "torch")).total


def smallest_per_family() -> list[str]:
    """One model per family -- its smallest variant -- for checks that need a real run."""
    import nnzoo
    from nnzoo.specs import FAMILIES

    picks = []
    for family in FAMILIES:
        names = nnzoo.list_models(family=family)
        if names:
            picks.append(min(names, key=meta_count))
    return picks
