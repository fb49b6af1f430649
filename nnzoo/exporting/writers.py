"""The exporters: one function per (writer, format), each writing one artifact to `path`.

PyTorch builds are traced with `torch.export` (the ONNX exporter's dynamo path uses it too), the
batch axis and every axis the spec leaves free marked `Dim.AUTO`: free where the graph allows,
fixed by export where it must be (the check reports which). Keras builds use Keras's own
`model.export`, which picks the route for the active Keras backend (tf2onnx on TensorFlow,
jax2onnx on JAX, torch.onnx on PyTorch; jax2tf for a SavedModel from JAX).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nnzoo import backends, conversion
from nnzoo.runtime import run
from nnzoo.specs.base import Spec

#: the input name every PyTorch artifact gets (Keras names its input after the Input layer)
INPUT, OUTPUT = "input", "output"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Exporters print progress and warn freely: none of it is the user's business here.

    Python-level output and warnings only; an exporter's exception still propagates.
    """
    loggers = [logging.getLogger(n) for n in ("tensorflow", "tf2onnx", "absl", "torch.onnx",
                                              "torch.export", "jax2onnx", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def example(spec: Spec) -> np.ndarray:
    """The tracing example: batch 2, so that export does not specialise the batch axis to 1."""
    return spec.example_input(2, seed=0)


def _dynamic_shapes(spec: Spec) -> tuple[dict[int, Any]]:
    import torch

    free = [0, *(a + 1 for a in spec.flexible_axes(channels_last=False))]
    return ({axis: torch.export.Dim.AUTO for axis in free},)


def torch_program(model: Any) -> Any:
    """`torch.export.export` of a PyTorch build, batch and the spec's free axes dynamic."""
    import torch

    spec = backends.spec_of(model)
    return torch.export.export(model, (torch.from_numpy(example(spec)),),
                               dynamic_shapes=_dynamic_shapes(spec))


def torch_pt2(model: Any, path: Path) -> None:
    import torch

    torch.export.save(torch_program(model), str(path))


def torch_onnx(model: Any, path: Path) -> None:
    """The dynamo exporter (`torch.onnx.export(..., dynamo=True)`): torch.export, then ONNX."""
    import torch

    spec = backends.spec_of(model)
    program = torch.onnx.export(model, (torch.from_numpy(example(spec)),), dynamo=True,
                                dynamic_shapes=_dynamic_shapes(spec), input_names=[INPUT],
                                output_names=[OUTPUT], verbose=False)
    program.save(str(path))


def keras_export(fmt: str) -> Callable[[Any, Path], None]:
    """`model.export(path, format=fmt)`, Keras choosing the route for its backend."""

    def write(model: Any, path: Path) -> None:
        if not getattr(model, "_called", True):  # Keras exports only a model called once
            run(model, example(backends.spec_of(model)))
        if fmt == "onnx" and backends.keras_backend() == "tensorflow":
            from nnzoo.exporting import tf2onnx_ops

            tf2onnx_ops.register()
        kwargs = jax_saved_model_options(model) if fmt == "tf_saved_model" else {}
        model.export(str(path), format=fmt, verbose=False, **kwargs)

    return write


def jax_saved_model_options(model: Any) -> dict[str, Any]:
    """jax2tf's options for a SavedModel from Keras's JAX backend (others take none).

    No gradient: an inference artifact needs none, and tracing it fails on batch norm here.
    The free axes are declared polymorphic, each a multiple of what the model needs (U-Net's
    2**depth), so that the spec's own input check passes on the symbolic shape.
    """
    if backends.keras_backend() != "jax":
        return {}
    spec = backends.spec_of(model)
    step = int(getattr(spec, "multiple", 1))
    dims = []
    for i, d in enumerate(model.inputs[0].shape):
        if i == 0:
            dims.append("b")
        elif d is None:
            dims.append(f"{step}*d{i}" if step > 1 else f"d{i}")
        else:
            dims.append(str(d))
    return {"jax2tf_kwargs": {"with_gradient": False,
                              "polymorphic_shapes": [f"({', '.join(dims)})"]}}


def keras_file(model: Any, path: Path) -> None:
    model.save(str(path))


def safetensors(model: Any, path: Path) -> None:
    """The canonical state dict, the same file whichever backend writes it."""
    conversion.save_weights(model, path)


WRITERS: dict[str, dict[str, Callable[[Any, Path], None]]] = {
    "torch": {"onnx": torch_onnx, "pt2": torch_pt2, "safetensors": safetensors},
    "keras": {"onnx": keras_export("onnx"), "saved-model": keras_export("tf_saved_model"),
              "litert": keras_export("litert"), "pt2": keras_export("torch"),
              "keras": keras_file, "safetensors": safetensors},
}


def write(model: Any, backend: str, fmt: str, path: Path) -> None:
    """Write `model` as `fmt` at `path` (any previous artifact there is replaced)."""
    if path.is_dir() and fmt == "saved-model":
        import shutil

        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with quiet(), _env(TF_CPP_MIN_LOG_LEVEL="3"):
        WRITERS[backend][fmt](model, path)


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
