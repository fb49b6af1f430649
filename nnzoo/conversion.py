"""Weight transfer between the PyTorch and Keras builds of one spec, driven by layer names.

The canonical form of a model's weights is its PyTorch state dict (numpy arrays, PyTorch keys and
layouts). The PyTorch side has it for free; the Keras side is read and written through the links
of `nnzoo.links` (one PyTorch key <-> the Keras variables holding the same numbers).

Transfers are checked whole before anything is written: a missing, extra or misshaped weight
raises `WeightTransferError` listing every offending name, and nothing is half-copied.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nnzoo import backends, safetensors_io
from nnzoo.errors import WeightTransferError
from nnzoo.links import keras_links
from nnzoo.runtime import to_numpy
from nnzoo.specs.base import Spec


# ---- canonical state dicts ----------------------------------------------------------------------
def _skip(key: str) -> bool:
    """PyTorch state that is not a weight by DESIGN.md's definition."""
    return key.endswith("num_batches_tracked")


def _torch_items(model: Any) -> Iterator[tuple[str, np.ndarray]]:
    for k, v in model.state_dict().items():
        if not _skip(k):
            yield k, v.detach().cpu().numpy()


def _keras_items(model: Any) -> Iterator[tuple[str, np.ndarray]]:
    for link in keras_links(model):
        yield link.key, np.asarray(link.to_torch([to_numpy(v) for v in link.variables]))


def state_items(model: Any) -> Iterator[tuple[str, np.ndarray]]:
    """The canonical weights one key at a time (PyTorch's as views of the live tensors), for a
    caller that stores them as it goes rather than holding a second whole copy."""
    return _torch_items(model) if backends.backend_of(model) == "torch" else _keras_items(model)


def state_keys(model: Any) -> list[str]:
    """The canonical keys of either backend's model, without reading any weight."""
    if backends.backend_of(model) == "torch":
        return [k for k in model.state_dict() if not _skip(k)]
    return [link.key for link in keras_links(model)]


def torch_state_dict(model: Any) -> dict[str, np.ndarray]:
    """A PyTorch model's weights and state as numpy arrays (a copy), minus batch counters."""
    return {k: v.copy() for k, v in _torch_items(model)}


def keras_state_dict(model: Any) -> dict[str, np.ndarray]:
    """A Keras nnzoo model's weights in PyTorch keys and layouts."""
    return dict(_keras_items(model))


def state_dict(model: Any) -> dict[str, np.ndarray]:
    """The canonical (PyTorch-layout) weights of an nnzoo model of either backend."""
    if backends.backend_of(model) == "torch":
        return torch_state_dict(model)
    return keras_state_dict(model)


def _check_keys(expected: Mapping[str, tuple[int, ...]], given: Mapping[str, tuple[int, ...]]
                ) -> list[str]:
    problems = [f"{k}: missing" for k in expected if k not in given]
    problems += [f"{k}: unexpected" for k in given if k not in expected]
    problems += [f"{k}: shape {given[k]} != expected {expected[k]}"
                 for k in expected if k in given and given[k] != tuple(expected[k])]
    return problems


def load_state_dict(model: Any, weights: Mapping[str, np.ndarray]) -> None:
    """Load canonical weights into a model of either backend; all-or-nothing. Each value is read
    once, when it is copied in (a `nnzoo.offload` shelf reads it from disk then)."""
    given = {k: tuple(np.shape(weights[k])) for k in weights if not _skip(k)}
    if backends.backend_of(model) == "torch":
        import torch

        own = model.state_dict()
        expected = {k: tuple(v.shape) for k, v in own.items() if not _skip(k)}
        problems = _check_keys(expected, given)
        if problems:
            raise WeightTransferError(f"weights do not fit {type(model).__name__}:", problems)
        with torch.no_grad():
            for k in given:
                value = np.ascontiguousarray(weights[k])
                own[k].copy_(torch.from_numpy(value).to(own[k].dtype))
        return
    links = keras_links(model)
    expected = {link.key: tuple(np.shape(link.to_torch([np.zeros(v.shape) for v in link.variables])))
                for link in links}
    problems = _check_keys(expected, given)
    if problems:
        raise WeightTransferError(f"weights do not fit Keras model {model.name!r}:", problems)
    for link in links:
        for var, value in zip(link.variables, link.to_keras(np.asarray(weights[link.key]))):
            # Always a fresh array, in one copy: JAX may alias a contiguous NumPy array's memory
            # rather than copy it, and `weights` may be views of a live PyTorch model.
            var.assign(np.array(value, dtype=var.dtype, order="C", copy=True))


def transfer_weights(src: Any, dst: Any) -> None:
    """Copy all weights (trainable and state) from `src` to `dst`, built from the same spec.

    Either direction, PyTorch <-> Keras (or same-backend copies). Raises `WeightTransferError`
    before writing anything if the models come from different specs or any weight does not fit.
    """
    s_spec, d_spec = backends.spec_of(src), backends.spec_of(dst)
    if s_spec != d_spec:
        diffs = [f"{k}: {v!r} vs {d_spec.to_dict().get(k)!r}"
                 for k, v in s_spec.to_dict().items() if d_spec.to_dict().get(k) != v]
        raise WeightTransferError("the models were built from different specs:", diffs)
    # PyTorch's side as views of its live tensors: a transfer holds no third copy of the weights
    # (ViT-L/16 in float64: 2.4 GB each).
    load_state_dict(dst, dict(state_items(src)))


def convert(model: Any, to: str, *, seed: int | None = None) -> Any:
    """Build `model`'s twin in backend `to` from its spec and copy the weights across.

    The twin draws no initial values of its own (zeros, each then checked to be loaded): they
    would be overwritten, and on Keras's JAX backend each weight shape's draw is an XLA
    compilation. `seed` draws them anyway, under that seed (and seeds the dropout streams).
    """
    spec = backends.spec_of(model)
    if seed is None:
        return build_loaded(spec, to, dict(state_items(model)))
    twin = backends.build_native(spec, to, seed=seed)
    transfer_weights(model, twin)
    return twin


def build_loaded(spec: Spec, backend: str, weights: Mapping[str, np.ndarray], *,
                 dtype: str = "float32") -> Any:
    """A `backend` build of `spec` holding `weights` (canonical keys), that drew no initial
    values of its own: it is built with zeros, and each zero is checked to be replaced."""
    with backends.placeholders(backend) as zeroed:
        model = backends.build_native(spec, backend, dtype=dtype)
    load_state_dict(model, weights)
    _all_loaded(model, zeroed)
    return model


def _all_loaded(model: Any, zeroed: list[Any]) -> None:
    """Every placeholder the build zeroed was a weight the transfer loaded: none stays zero."""
    if backends.backend_of(model) == "torch":
        loaded = {t.untyped_storage().data_ptr() for t in model.state_dict().values()}
        left = [f"a {tuple(t.shape)} tensor" for t in zeroed
                if t.untyped_storage().data_ptr() not in loaded]
    else:
        loaded = {id(v) for link in keras_links(model) for v in link.variables}
        left = [v.path for v in zeroed if id(v) not in loaded]
    if left:
        raise WeightTransferError("the new build kept placeholder values that no weight of the "
                                  "source replaced (a bug in nnzoo's links):", left)


# ---- checkpoint files ---------------------------------------------------------------------------
#: PyTorch state-dict files (torchvision's format; nnzoo's own format for every model).
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
KERAS_SUFFIX = ".weights.h5"
#: canonical weights (PyTorch keys and layouts) in safetensors, for either backend
SAFETENSORS_SUFFIX = safetensors_io.SUFFIX


def check_weights_path(path: str | os.PathLike[str]) -> Path:
    """Refuse a missing file or an unknown format before any model is built."""
    p = Path(path)
    if not (p.name.endswith(KERAS_SUFFIX) or p.suffix in (*TORCH_SUFFIXES, SAFETENSORS_SUFFIX)):
        raise WeightTransferError(
            f"cannot tell the format of {str(p)!r}: use a PyTorch state dict "
            f"({', '.join(TORCH_SUFFIXES)}), a safetensors file ({SAFETENSORS_SUFFIX}) or a "
            f"Keras weights file ({KERAS_SUFFIX})"
        )
    if not p.is_file():
        raise WeightTransferError(f"weights file {str(p)!r} does not exist")
    if p.suffix == SAFETENSORS_SUFFIX:
        safetensors_io.require()  # before any model is built: the `export` extra reads it
    return p


def read_torch_file(path: Path) -> dict[str, np.ndarray]:
    """A PyTorch state-dict file as numpy arrays (tensors only; no code is unpickled)."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupted, truncated or not a torch file at all
        raise WeightTransferError(f"cannot read {str(path)!r} as a PyTorch state dict: {exc}") from None
    for wrapper in ("state_dict", "model"):  # common training-checkpoint layouts
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightTransferError(f"{str(path)!r} does not hold a state dict of tensors")
    return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
            for k, v in data.items()}


def load_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Load a PyTorch state-dict file or a Keras `.weights.h5` file into a model of either backend."""
    p = check_weights_path(path)
    if p.suffix in TORCH_SUFFIXES:
        load_state_dict(model, read_torch_file(p))
        return
    if p.suffix == SAFETENSORS_SUFFIX:  # canonical (or torchvision) keys, read with numpy
        load_state_dict(model, safetensors_io.read(p))
        return
    # Keras loads into a throwaway twin: on a mismatched file it may skip layers with only a
    # warning, keeping fresh weights there. Such warnings are errors here, and the model itself
    # receives the weights only once all of them have loaded.
    twin = backends.build_native(backends.spec_of(model), "keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            twin.load_weights(str(p))
        except Exception as exc:
            raise WeightTransferError(f"cannot load {str(p)!r} into this model: {exc}") from None
    skipped = [str(w.message) for w in caught if "skip" in str(w.message).lower()
               or "mismatch" in str(w.message).lower()]
    if skipped:
        raise WeightTransferError(f"cannot load {str(p)!r} into this model:", skipped)
    transfer_weights(twin, model)


def save_weights(model: Any, path: str | os.PathLike[str]) -> Path:
    """Save in the model's own framework -- a state dict (.pt) for torch, `.weights.h5` for Keras --
    or, from either, the canonical state dict as `.safetensors` (the spec in its metadata)."""
    p = Path(path)
    if p.suffix == SAFETENSORS_SUFFIX:
        meta = safetensors_io.spec_metadata(backends.spec_of(model).to_dict())
        return safetensors_io.write(state_dict(model), p, meta)
    if backends.backend_of(model) == "torch":
        import torch

        if p.suffix not in TORCH_SUFFIXES:
            raise WeightTransferError(f"save a PyTorch model's weights as "
                                      f"{'/'.join((*TORCH_SUFFIXES, SAFETENSORS_SUFFIX))}")
        torch.save(model.state_dict(), p)
    else:
        if not p.name.endswith(KERAS_SUFFIX):
            raise WeightTransferError(f"save a Keras model's weights as *{KERAS_SUFFIX} or "
                                      f"*{SAFETENSORS_SUFFIX}")
        model.save_weights(str(p))
    return p
