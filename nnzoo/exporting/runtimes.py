"""Each artifact loaded back in its own runtime, as a function of a canonical-layout numpy input.

onnxruntime for ONNX, `torch.export.load` for `.pt2`, `tf.saved_model.load` for a SavedModel,
the LiteRT interpreter (`ai-edge-litert`, else TensorFlow's `tf.lite.Interpreter`) for `.tflite`,
`keras.models.load_model` for `.keras`, and a fresh nnzoo build for safetensors. Each also says
which input axes it leaves free (a symbolic dimension), in canonical axis numbers.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnzoo import backends, conversion, safetensors_io
from nnzoo.layout import from_keras, to_keras
from nnzoo.runtime import run
from nnzoo.specs.base import Spec


@dataclass
class Loaded:
    """An artifact ready to run: canonical input in, canonical output out."""

    call: Callable[[np.ndarray], np.ndarray]
    free: tuple[int, ...]  # canonical input axes (0 = batch) that the artifact leaves free


def _canonical_axes(axes: list[int], spec: Spec, keras_layout: bool) -> tuple[int, ...]:
    """Axes of an artifact's input, renumbered in canonical layout (NHWC axis 1 is NCHW axis 2)."""
    if keras_layout and spec.input_kind == "image":
        axes = [{0: 0, 1: 2, 2: 3, 3: 1}[a] for a in axes]
    return tuple(sorted(axes))


def _wrap(fn: Callable[[np.ndarray], np.ndarray], spec: Spec, keras_layout: bool,
          dtype: Any) -> Callable[[np.ndarray], np.ndarray]:
    def call(x: np.ndarray) -> np.ndarray:
        xin = to_keras(x, spec.input_kind) if keras_layout else x
        y = np.asarray(fn(np.ascontiguousarray(xin.astype(dtype))))
        return from_keras(y, spec.output_kind) if keras_layout else y

    return call


def load_onnx(path: Path, spec: Spec, keras_layout: bool) -> Loaded:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    dtype = {"tensor(float)": np.float32, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32}.get(inp.type, np.float32)
    free = [i for i, d in enumerate(inp.shape) if not isinstance(d, int)]
    fn = lambda x: session.run(None, {inp.name: x})[0]  # noqa: E731
    return Loaded(_wrap(fn, spec, keras_layout, dtype), _canonical_axes(free, spec, keras_layout))


def load_pt2(path: Path, spec: Spec, keras_layout: bool) -> Loaded:
    import torch

    program = torch.export.load(str(path))
    names = set(program.graph_signature.user_inputs)
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name in names)
    value = node.meta["val"]
    free = [i for i, d in enumerate(value.shape) if not isinstance(d, int)]
    module = program.module()
    dtype = torch.empty((), dtype=value.dtype).numpy().dtype

    def fn(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).detach().numpy()

    return Loaded(_wrap(fn, spec, keras_layout, dtype), _canonical_axes(free, spec, keras_layout))


def load_saved_model(path: Path, spec: Spec, keras_layout: bool) -> Loaded:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    (name, tensor_spec), = serve.structured_input_signature[1].items()
    free = [i for i, d in enumerate(tensor_spec.shape.as_list()) if d is None]

    def fn(x: np.ndarray) -> np.ndarray:
        (out,) = serve(**{name: tf.constant(x)}).values()
        return out.numpy()

    call = _wrap(fn, spec, keras_layout, tensor_spec.dtype.as_numpy_dtype)
    call.keep = loaded  # type: ignore[attr-defined]  # the functions live as long as the object
    return Loaded(call, _canonical_axes(free, spec, keras_layout))


def litert_interpreter(path: Path) -> Any:
    """ai-edge-litert's interpreter (the LiteRT runtime) if installed, else TensorFlow's."""
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter
    else:
        from tensorflow.lite import Interpreter  # type: ignore[no-redef]
    return Interpreter(model_path=str(path))


def load_litert(path: Path, spec: Spec, keras_layout: bool) -> Loaded:
    interpreter = litert_interpreter(path)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    free = [i for i, d in enumerate(inp["shape_signature"]) if d < 0]

    def fn(x: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(inp["index"], list(x.shape), strict=True)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"]).copy()

    return Loaded(_wrap(fn, spec, keras_layout, inp["dtype"]),
                  _canonical_axes(free, spec, keras_layout))


def load_keras(path: Path, spec: Spec, keras_layout: bool) -> Loaded:
    import keras

    import nnzoo.keras_impl  # noqa: F401  (registers nnzoo's classes for load_model)

    model = keras.models.load_model(str(path))
    # compiled as `exporting.reference` runs the writer's model: the same program, the same bits
    free = [i for i, d in enumerate(model.inputs[0].shape) if d is None]
    return Loaded(lambda x: run(model, x, compiled=True), _canonical_axes(free, spec, True))


def load_safetensors(path: Path, spec: Spec, backend: str) -> Loaded:
    """The weights back into a fresh build of the same backend (free axes: the build's own)."""
    fresh = backends.build_native(spec, backend, seed=1)
    conversion.load_state_dict(fresh, safetensors_io.read(path))
    free = (0, *(a + 1 for a in spec.flexible_axes(channels_last=False)))
    return Loaded(lambda x: run(fresh, x, compiled=True), tuple(sorted(free)))


def load(fmt: str, path: Path, spec: Spec, backend: str) -> Loaded:
    """Load what `export` wrote; `backend` is the model's ("keras" artifacts take NHWC images)."""
    keras_layout = backend == "keras"
    if fmt == "safetensors":
        return load_safetensors(path, spec, backend)
    loader = {"onnx": load_onnx, "pt2": load_pt2, "saved-model": load_saved_model,
              "litert": load_litert, "keras": load_keras}[fmt]
    return loader(path, spec, keras_layout)
