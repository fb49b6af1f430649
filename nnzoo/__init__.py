"""nnzoo: one framework-neutral spec, built as a native PyTorch module or a native Keras 3 model.

    >>> import nnzoo
    >>> model = nnzoo.build("resnet34", backend="keras", num_classes=10)

Importing nnzoo imports neither torch nor tensorflow; a backend is imported when first built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from nnzoo import conversion, costs, errors, guard
from nnzoo.backends import available_backends, keras_backend, use_keras_backend
from nnzoo.distributed import DataParallelReport, data_parallel_parity, train_data_parallel
from nnzoo.errors import (
    BackendError,
    BackendNotInstalledError,
    DistributedError,
    ExportCheckError,
    ExportFormatError,
    InputDtypeError,
    InputError,
    InputShapeError,
    KerasBackendError,
    LabelError,
    MemoryGuardError,
    NnzooError,
    NotAModelError,
    OptimizeError,
    SpecError,
    UnknownFieldError,
    UnknownModelError,
    WeightTransferError,
)
from nnzoo.fast import optimize
from nnzoo.parity import ParityReport, check_parity
from nnzoo.registry import get_spec, list_models, resolve, spec_from_dict
from nnzoo.runtime import ParamCount, count_params
from nnzoo.specs.base import Spec
from nnzoo.training import GradientReport, TrainResult, gradient_parity, train_parity

__version__ = "0.1.0"

__all__ = [
    "BackendError", "BackendNotInstalledError", "DataParallelReport", "DistributedError",
    "ExportCheckError", "ExportFormatError", "GradientReport", "InputDtypeError", "InputError",
    "InputShapeError", "KerasBackendError", "LabelError", "MemoryGuardError", "NnzooError",
    "NotAModelError", "OptimizeError", "ParamCount", "ParityReport", "Spec", "SpecError",
    "TrainResult", "UnknownFieldError", "UnknownModelError", "WeightTransferError",
    "available_backends", "build", "check_parity", "convert", "count_params",
    "data_parallel_parity", "errors", "export", "flops", "get_spec", "gradient_parity", "guard",
    "keras_backend", "list_models", "optimize", "spec_from_dict", "train_data_parallel",
    "train_parity", "transfer_weights", "use_keras_backend",
]


def build(
    name_or_spec: str | Spec | Mapping[str, Any],
    backend: str = "torch",
    *,
    seed: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    max_memory: int | str | None = None,
    **overrides: Any,
) -> Any:
    """Build a registered model, a spec or a spec dict as a native model of `backend`.

    Returns a `torch.nn.Module` for "torch" and a `keras.Model` for "keras"; either carries the
    spec it was built from as `.spec`. With `seed`, the initial weights are reproducible;
    without, the framework's own global seed decides them (`torch.manual_seed`,
    `keras.utils.set_random_seed`).
    `weights` loads a PyTorch state-dict file (.pt/.pth/.bin; torchvision's format for ResNet
    and ViT) or a Keras `.weights.h5` file, into either backend.
    The spec, the overrides, the backend and the weights path are all validated before any
    framework is imported; a model whose weights do not load is not returned. A build whose
    weights would not fit in the memory available is refused (`MemoryGuardError`) before
    anything is allocated; `max_memory` (bytes, "64G", or "off") replaces that budget.
    """
    from nnzoo import backends

    spec = resolve(name_or_spec, **overrides)
    room = guard.limit(max_memory)  # checks the value, like everything else, before importing
    backends.require(backend)
    if weights is not None:
        conversion.check_weights_path(weights)
    with room:
        model = backends.build_native(spec, backend, seed=seed)
    if weights is not None:
        conversion.load_weights(model, weights)
    return model


def transfer_weights(src: Any, dst: Any) -> None:
    """Copy every weight of `src` into `dst` (PyTorch <-> Keras, built from the same spec)."""
    conversion.transfer_weights(src, dst)


def convert(model: Any, to: str, *, seed: int | None = None) -> Any:
    """Build `model`'s twin in backend `to` ("keras" or "torch") and copy the weights across."""
    from nnzoo import backends

    backends.require(to)
    return conversion.convert(model, to, seed=seed)


def flops(name_or_spec: str | Spec | Mapping[str, Any], *, batch: int = 1, dtype: str = "float32",
          **overrides: Any) -> Any:
    """FLOPs (a multiply-add is 2) and memory, per layer and in total, of a model in either
    backend: computed once from the spec (`nnzoo.costs.Cost`; `print()` it for the table)."""
    return costs.flops(name_or_spec, batch=batch, dtype=dtype, **overrides)


def export(model: Any, format: str, path: str | os.PathLike[str], *, check: bool = True) -> Any:
    """Write an nnzoo model of either backend as `format` (onnx, pt2, saved-model, litert,
    safetensors, keras) and, with `check`, load the artifact in its own runtime and compare its
    outputs with the model's (batch 1 and 7; float32 parity bound). Returns an
    `nnzoo.exporting.ExportResult`; a format the backend cannot write raises `ExportFormatError`
    naming those it can, before any work."""
    from nnzoo.exporting import export as export_model

    return export_model(model, format, path, check=check)
