"""safetensors files of canonical weights: PyTorch keys and layouts, written and read with numpy.

safetensors is the weights format the field now prefers: it is not a pickle (loading runs no
code) and any language can read it with no framework. nnzoo writes a model's canonical state
dict (`nnzoo.conversion.state_dict`, the same for both backends) with `safetensors.numpy`, so a
file written from a Keras build equals, key for key, the one written from its PyTorch twin, and
`safetensors.torch.load_file` or torchvision-style loaders read it as an ordinary state dict.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nnzoo.errors import ExportDependencyError, WeightTransferError

SUFFIX = ".safetensors"


def require() -> None:
    """Raise `BackendNotInstalledError` (naming the `export` extra) if safetensors is missing."""
    if importlib.util.find_spec("safetensors") is None:
        raise ExportDependencyError("safetensors", "safetensors")


def write(weights: Mapping[str, np.ndarray], path: str | os.PathLike[str],
          metadata: Mapping[str, str] | None = None) -> Path:
    """Write `weights` (numpy arrays) to `path`; `metadata` goes in the header as strings.

    `{"format": "pt"}` is added, as `safetensors.torch` writes it: loaders that check for it
    (transformers, for one) then accept the file as a PyTorch state dict.
    """
    require()
    from safetensors.numpy import save_file

    p = Path(path)
    tensors = {k: np.ascontiguousarray(v) for k, v in weights.items()}
    save_file(tensors, str(p), metadata={"format": "pt", **(metadata or {})})
    return p


def read(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A safetensors file as numpy arrays (no framework, no code run)."""
    require()
    from safetensors.numpy import load_file

    try:
        return dict(load_file(str(path)))
    except Exception as exc:  # truncated, corrupted, or not safetensors at all
        raise WeightTransferError(f"cannot read {str(path)!r} as safetensors: {exc}") from None


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The header's metadata: nnzoo writes the spec (`nnzoo.spec`, JSON) beside `format`."""
    require()
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return dict(f.metadata() or {})


def spec_metadata(spec_dict: Mapping[str, object]) -> dict[str, str]:
    """The metadata nnzoo writes: the spec the weights belong to, as JSON."""
    return {"nnzoo.spec": json.dumps(dict(spec_dict), sort_keys=True)}
