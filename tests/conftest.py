"""Shared fixtures: the registry, the GPU gate, torchvision as a reference, and JAX's caches
dropped between test modules."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


#: This session's config (for its cache: `meta_count`).
_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG.append(config)
    # Two threads each, as CI's 2-core machine has; keeps timings honest and avoids oversubscription.
    # `make test` runs two pytest processes side by side and gives each one (NNZOO_TEST_THREADS).
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("NNZOO_TEST_THREADS", "2")))
    except ImportError:
        pass


@pytest.fixture(scope="module", autouse=True)
def _jax_caches_per_module() -> Iterator[None]:
    """Drop JAX's compilation and tracing caches after each test module. One process checks
    dozens of models, and JAX keeps every program it compiled and every operation it ran eagerly,
    for models long gone: measured on Keras/JAX over test_parity, test_training and test_export's
    light tests, 4.0 GB resident at the end, 1.8 GB once cleared, and 1.7 GB clearing after each
    module, in the same 604 s. (Not nnzoo's to do in a user's process: it would recompile their
    own functions.)"""
    yield
    if os.environ.get("KERAS_BACKEND") == "jax" and "jax" in sys.modules:
        sys.modules["jax"].clear_caches()


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


def meta_count(name: str) -> int:
    """A model's total parameter count, from a free build on PyTorch's meta device."""
    return _meta_counts()[name]


@functools.cache
def _meta_counts() -> dict[str, int]:
    """Every registered model's count, which collecting the tests needs (48 meta builds, 3-6 s):
    kept in pytest's cache under a digest of nnzoo's sources and PyTorch's version, so only the
    first of `make test`'s pytest processes builds them."""
    import torch

    import nnzoo
    from nnzoo import backends
    from nnzoo.runtime import count_params

    root = Path(nnzoo.__file__).parent
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes())
    key = f"nnzoo/meta_counts/{digest.hexdigest()[:20]}"
    cache = getattr(_CONFIG[0], "cache", None) if _CONFIG else None
    stored = cache.get(key, None) if cache is not None else None
    if isinstance(stored, dict) and set(stored) == set(nnzoo.list_models()):
        return stored
    with torch.device("meta"):
        counts = {name: count_params(backends.build_native(nnzoo.get_spec(name), "torch")).total
                  for name in nnzoo.list_models()}
    if cache is not None:
        cache.set(key, counts)
    return counts


#: Above this many parameters a model's parity and gradient checks run under `slow` (in `make
#: test`, in passes of their own on each Keras backend).
HEAVY = 50_000_000
#: Above this (ViT-L and ViT-H: 304-632M parameters), a float64 check holds gigabytes (ViT-L's
#: 8.3-9.2 GB): marker `alone`, a pass of its own in `make test`, where it meets only a light one.
ALONE = 250_000_000


def heavy(name: str) -> bool:
    """Over HEAVY parameters, or a compound scaling of a lighter registered model (EfficientNet
    B1..B7: B0's layers, wider and repeated, on a larger image). Its layer types are checked on
    every backend through the lighter model."""
    import nnzoo

    spec = nnzoo.get_spec(name)
    scaled = getattr(spec, "width_mult", 1.0) != 1.0 or getattr(spec, "depth_mult", 1.0) != 1.0
    return scaled or meta_count(name) > HEAVY


@functools.cache
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


#: Overrides that shrink a family's smallest variant to a few thousand parameters, for tests that
#: build it many times (threads, soak, warnings); a family not listed is used as registered.
TINY: dict[str, dict[str, object]] = {
    "resnet": {"layers": (1, 1), "widths": (8, 16), "stem_width": 8, "image_size": (16, 16)},
    "cnn": {"image_size": (16, 16)},
    "vit": {"embed_dim": 24, "num_heads": 3, "mlp_dim": 48, "depth": 2, "patch_size": 4},
    "transformer": {"embed_dim": 32, "num_heads": 4, "mlp_dim": 64, "depth": 1},
    "unet": {"base_width": 4, "depth": 2, "image_size": (8, 8)},
    "recurrent": {"hidden_size": 16, "embed_dim": 8, "vocab_size": 50},
    "convnext": {"layers": (1, 1), "widths": (8, 16), "image_size": (8, 8)},
    "hybrid": {"stages": ({"channels": 4},), "image_size": (8, 8), "attention_layers": 1,
               "mlp_dim": 16, "num_heads": 2},
    "mobilenet": {"blocks": ({"channels": 8, "expanded": 16, "se": True},
                             {"channels": 8, "expanded": 8, "stride": 2, "activation": "hardswish"}),
                  "stem_width": 8, "last_width": 16, "hidden_width": 8, "image_size": (8, 8)},
    "efficientnet": {"stages": ({"expand_ratio": 2, "kernel": 3, "stride": 1, "channels": 8, "layers": 2},
                                {"expand_ratio": 1, "kernel": 5, "stride": 2, "channels": 8, "layers": 1}),
                     "stem_width": 8, "head_ratio": 2, "image_size": (8, 8)},
}


def tiny_per_family() -> list:
    """One tiny spec per family: its smallest variant, shrunk by TINY, on its quick input."""
    import nnzoo

    specs = []
    for name in smallest_per_family():
        spec = nnzoo.get_spec(name)
        specs.append(spec.replace(**TINY.get(spec.family, {})).quick())
    return specs

