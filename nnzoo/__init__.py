"""nnzoo: one framework-neutral spec, built as a native PyTorch module or a native Keras 3 model.

    >>> import nnzoo
    >>> model = nnzoo.build("resnet34", backend="keras", num_classes=10)

Importing nnzoo imports neither torch nor tensorflow; a backend is imported when first built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nnzoo import errors
from nnzoo.backends import available_backends
from nnzoo.errors import (
    BackendError,
    BackendNotInstalledError,
    InputShapeError,
    NnzooError,
    SpecError,
    UnknownFieldError,
    UnknownModelError,
    WeightTransferError,
)
from nnzoo.parity import ParamCount, ParityReport, check_parity, count_params
from nnzoo.registry import get_spec, list_models, resolve, spec_from_dict
from nnzoo.specs.base import Spec

__version__ = "0.1.0"

__all__ = [
    "BackendError", "BackendNotInstalledError", "InputShapeError", "NnzooError", "ParamCount",
    "ParityReport", "Spec", "SpecError", "UnknownFieldError", "UnknownModelError",
    "WeightTransferError", "available_backends", "build", "check_parity", "count_params",
    "errors", "get_spec", "list_models", "spec_from_dict",
]


def build(
    name_or_spec: str | Spec | Mapping[str, Any],
    backend: str = "torch",
    *,
    seed: int | None = None,
    **overrides: Any,
) -> Any:
    """Build a registered model, a spec or a spec dict as a native model of `backend`.

    Returns a `torch.nn.Module` for "torch" and a `keras.Model` for "keras"; either carries the
    spec it was built from as `.spec`. With `seed`, the initial weights are reproducible.
    The spec, the overrides and the backend are all validated before any framework is imported.
    """
    from nnzoo import backends

    spec = resolve(name_or_spec, **overrides)
    backends.require(backend)
    return backends.build_native(spec, backend, seed=seed)
