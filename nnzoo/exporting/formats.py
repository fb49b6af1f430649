"""Which formats each backend (and each family) can write, and what each needs: plain data.

Decided from names alone -- the model's backend, the active Keras backend and the spec -- so a
format that cannot be written is refused, with the reason and the formats that can, before any
exporter or framework starts.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from nnzoo.errors import ExportDependencyError, ExportFormatError
from nnzoo.specs.base import Spec


@dataclass(frozen=True)
class Format:
    """An export format: its file suffix ("" for a directory) and what it holds."""

    name: str
    suffix: str
    holds: str


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", ".onnx", "the inference graph, for onnxruntime"),
    Format("pt2", ".pt2", "a torch.export ExportedProgram (torch.export.load)"),
    Format("saved-model", "", "a TensorFlow SavedModel directory (tf.saved_model.load)"),
    Format("litert", ".tflite", "a LiteRT (TFLite) flatbuffer, for the LiteRT interpreter"),
    Format("safetensors", ".safetensors", "the weights in nnzoo's canonical keys and layouts"),
    Format("keras", ".keras", "a Keras model file (keras.models.load_model)"),
)}

# Where a backend writes a format: "torch", or "keras/<Keras backend>".
_FROM_TORCH = "torch.export traces PyTorch modules: export the PyTorch build (nnzoo.convert(model, "\
              "'torch') has the same weights)"
_FROM_KERAS = "a Keras/TensorFlow format: export the Keras build (nnzoo.convert(model, 'keras') "\
              "has the same weights)"

_KERAS_ON_TORCH = "Keras 3.15 on its PyTorch backend traces with every free axis set to 1, so the "\
                  "batch axis is fixed, and its tracer failed here on max pooling, recurrent cells, "\
                  "GELU and U-Net (measured); export the PyTorch build, the same network: " \
                  "nnzoo.convert(model, 'torch')"

#: writer -> format -> None (it writes it) or the reason it cannot
SUPPORT: dict[str, dict[str, str | None]] = {
    "torch": {"onnx": None, "pt2": None, "safetensors": None,
              "saved-model": _FROM_KERAS, "litert": _FROM_KERAS, "keras": _FROM_KERAS},
    "keras/tensorflow": {"onnx": None, "saved-model": None, "litert": None, "safetensors": None,
                         "keras": None, "pt2": _FROM_TORCH},
    "keras/jax": {
        "onnx": "Keras 3.15 converts JAX to ONNX with jax2onnx, which nnzoo does not install: it "
                "brings flax, orbax and huggingface_hub, needs Python 3.11, took about a minute per "
                "small model here and failed on max pooling, U-Net's shape rule and the recurrent "
                "masks (jax2onnx 0.17.1); export the PyTorch build, or use KERAS_BACKEND=tensorflow",
        "saved-model": None, "safetensors": None, "keras": None,
        "litert": "Keras 3.15 writes LiteRT only on its TensorFlow and PyTorch backends",
        "pt2": _FROM_TORCH,
    },
    "keras/torch": {
        "safetensors": None, "keras": None,
        "onnx": _KERAS_ON_TORCH, "pt2": _KERAS_ON_TORCH,
        "saved-model": "Keras's PyTorch backend writes a SavedModel only through torch_xla, which "
                       "nnzoo does not install; use KERAS_BACKEND=tensorflow or jax",
        "litert": "Keras's PyTorch backend writes LiteRT through the litert-torch package, which "
                  "nnzoo's export extra does not install (it brings transformers, flax and "
                  "their tooling); use KERAS_BACKEND=tensorflow",
    },
}

#: (writer, format) -> packages it needs, beyond the framework itself (import names, first
#: missing one reported). Checked before any work; the `export` extra installs them all.
NEEDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("torch", "onnx"): ("onnx", "onnxscript", "onnxruntime"),
    ("keras/tensorflow", "onnx"): ("tf2onnx", "onnx", "onnxruntime"),
    ("keras/jax", "saved-model"): ("tensorflow",),
    ("keras/tensorflow", "litert"): ("tensorflow",),
    **{(w, "safetensors"): ("safetensors",) for w in ("torch", "keras/tensorflow", "keras/jax",
                                                      "keras/torch")},
}
#: the extra that installs a package, where it is not `export`
EXTRA = {"tensorflow": "keras"}


def family_reason(spec: Spec, writer: str, fmt: str) -> str | None:
    """Why this family (as `spec` configures it) cannot be written as `fmt` by `writer`, if so.

    Both were measured; tests/test_export.py asserts each error, and the README's table of
    families x formats repeats them.
    """
    if (writer == "torch" and fmt in ("onnx", "pt2") and spec.family == "recurrent"
            and getattr(spec, "masked", False)):
        return (f"this recurrent model packs its padded token sequences (pack_padded_sequence); "
                f"the lengths come from the data, which torch.export (and so the ONNX exporter) "
                f"cannot trace: build it with padding_idx=None (no packing) to export it as {fmt!r}")
    if writer == "keras/tensorflow" and fmt == "litert" and spec.family == "recurrent":
        return ("the LiteRT converter keeps Keras's recurrent loop as TensorFlow ops "
                "(TensorListReserve) that the LiteRT runtime's built-in op set does not run; "
                "export it as onnx or saved-model")
    return None


def writer_of(backend: str, keras_backend: str | None = None) -> str:
    return backend if backend == "torch" else f"keras/{keras_backend}"


def writable(writer: str, spec: Spec | None = None) -> dict[str, str | None]:
    """format -> None where `writer` can write it for `spec`, else the reason it cannot."""
    table = dict(SUPPORT[writer])
    if spec is not None:
        table = {fmt: why or family_reason(spec, writer, fmt) for fmt, why in table.items()}
    return table


def check_format(fmt: object, writer: str, spec: Spec, path: str | Path, where: str) -> Path:
    """Refuse an unknown or unwritable format, a wrong suffix or a missing package: fast."""
    table = writable(writer, spec)
    can = [f for f, why in table.items() if why is None]
    if fmt not in FORMATS:
        raise ExportFormatError(fmt, where, f"unknown format (nnzoo knows {', '.join(FORMATS)})", can)
    reason = table[fmt]  # type: ignore[index]
    if reason is not None:
        raise ExportFormatError(fmt, where, reason, can)
    p = Path(path)
    suffix = FORMATS[fmt].suffix  # type: ignore[index]
    if suffix and not p.name.endswith(suffix):
        raise ExportFormatError(fmt, where, f"the path must end in {suffix} (got {str(p)!r})", can)
    if not suffix and p.is_file():
        raise ExportFormatError(fmt, where, f"a {fmt} is a directory and {str(p)!r} is a file", can)
    for package in NEEDS.get((writer, fmt), ()):  # type: ignore[arg-type]
        if importlib.util.find_spec(package) is None:
            raise ExportDependencyError(str(fmt), package, EXTRA.get(package, "export"))
    return p


# ---- the README's table ------------------------------------------------------------------------
#: short column names for the writers
WRITER_NAMES = {"torch": "PyTorch", "keras/tensorflow": "Keras-TF", "keras/jax": "Keras-JAX",
                "keras/torch": "Keras-torch"}


def markdown_table(names: list[str]) -> str:
    """Families x formats: which builds write each format, for one registered model per family.

    A writer that can only once a field changes (a recurrent model without padding id) is listed
    with that change. Generated from `SUPPORT` and `family_reason`; the export tests assert every
    cell (a refusal raises `ExportFormatError`, the rest round-trip and pass the check).
    """
    from nnzoo.registry import get_spec

    lines = [f"| family (model) | {' | '.join(FORMATS)} |", "|---" * (len(FORMATS) + 1) + "|"]
    for name in names:
        spec = get_spec(name)
        unpadded = spec.replace(padding_idx=None) if "padding_idx" in spec.field_names() else spec
        cells = []
        for fmt in FORMATS:
            who = []
            for writer, short in WRITER_NAMES.items():
                if writable(writer, spec)[fmt] is None:
                    who.append(short)
                elif writable(writer, unpadded)[fmt] is None:
                    who.append(f"{short} (padding_idx=None)")
            cells.append(", ".join(who) or "-")
        lines.append(f"| {spec.family} (`{name}`) | {' | '.join(cells)} |")
    return "\n".join(lines)
