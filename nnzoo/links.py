"""The links between PyTorch state-dict keys and Keras variables, and the one name mapping.

A Keras layer is named after the PyTorch module path of its twin, written with `-` where PyTorch
writes `.` (`layer1.0.conv1` <-> `layer1-0-conv1`): Keras on its PyTorch backend registers each
layer as a torch module, and torch refuses `.` in module and parameter names; Keras refuses `/`.
`keras_name` and `torch_path` are that mapping, both ways; everything that pairs the two builds
(weight transfer, checkpoint import, the layer report, explain, diagram) goes through them.

Each *link* pairs one PyTorch key with the Keras variable(s) holding the same numbers, and carries
the two array transforms between them (a dense kernel is transposed, a conv kernel goes OIHW <->
HWIO, ...). One rule per Keras layer type finds every link; custom layers give theirs with a
`torch_links()` method. No framework is imported at module level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnzoo.errors import WeightTransferError

#: PyTorch's module-path separator, as written in a Keras layer name.
SEP = "-"


def keras_name(path: str) -> str:
    """The Keras layer name of the PyTorch module at `path` (`layer1.0.conv1` -> `layer1-0-conv1`)."""
    if SEP in path:
        raise ValueError(f"PyTorch module path {path!r} contains {SEP!r}: not reversible")
    return path.replace(".", SEP)


def torch_path(name: str) -> str:
    """The PyTorch module path of the Keras layer `name`: the inverse of `keras_name`."""
    return name.replace(SEP, ".")


Arrays = list[np.ndarray]


@dataclass(frozen=True)
class Link:
    """One PyTorch state-dict key <-> the Keras variable(s) holding the same numbers."""

    key: str
    variables: tuple[Any, ...]
    to_torch: Callable[[Arrays], np.ndarray]
    to_keras: Callable[[np.ndarray], Arrays]


def same(key: str, var: Any) -> Link:
    """A variable stored identically in both frameworks (biases, norm scales, embeddings)."""
    return Link(key, (var,), lambda a: a[0], lambda t: [t])


def transposed(key: str, var: Any, axes: tuple[int, ...]) -> Link:
    """A variable whose Keras layout is PyTorch's transposed by `axes` (and back by its inverse)."""
    inverse = tuple(int(i) for i in np.argsort(axes))
    return Link(key, (var,), lambda a: a[0].transpose(inverse), lambda t: [t.transpose(axes)])


# ---- one rule per Keras layer type --------------------------------------------------------------
def _dense(layer: Any) -> list[Link]:
    links = [transposed(f"{torch_path(layer.name)}.weight", layer.kernel, (1, 0))]  # (out,in) <-> (in,out)
    if layer.use_bias:
        links.append(same(f"{torch_path(layer.name)}.bias", layer.bias))
    return links


def _conv(layer: Any) -> list[Link]:
    # OIHW <-> HWIO; with groups, Keras's I is in_channels // groups exactly like PyTorch's.
    # A transposed convolution is the same permutation: (in, out, kh, kw) <-> (kh, kw, out, in).
    links = [transposed(f"{torch_path(layer.name)}.weight", layer.kernel, (2, 3, 1, 0))]
    if layer.use_bias:
        links.append(same(f"{torch_path(layer.name)}.bias", layer.bias))
    return links


def _depthwise(layer: Any) -> list[Link]:
    # PyTorch (C*m, 1, kh, kw) <-> Keras (kh, kw, C, m): channel c's m filters are adjacent in both.
    var = layer.kernel
    kh, kw, c, m = var.shape

    def to_torch(a: Arrays) -> np.ndarray:
        return a[0].reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]

    def to_keras(t: np.ndarray) -> Arrays:
        return [t[:, 0].transpose(1, 2, 0).reshape(kh, kw, c, m)]

    links = [Link(f"{torch_path(layer.name)}.weight", (var,), to_torch, to_keras)]
    if layer.use_bias:
        links.append(same(f"{torch_path(layer.name)}.bias", layer.bias))
    return links


def _batch_norm(layer: Any) -> list[Link]:
    n = torch_path(layer.name)
    links = []
    if layer.scale:
        links.append(same(f"{n}.weight", layer.gamma))
    if layer.center:
        links.append(same(f"{n}.bias", layer.beta))
    links += [same(f"{n}.running_mean", layer.moving_mean),
              same(f"{n}.running_var", layer.moving_variance)]
    return links


def _affine_norm(layer: Any) -> list[Link]:
    links = []
    if layer.scale:
        links.append(same(f"{torch_path(layer.name)}.weight", layer.gamma))
    if layer.center:
        links.append(same(f"{torch_path(layer.name)}.bias", layer.beta))
    return links


def _embedding(layer: Any) -> list[Link]:
    return [same(f"{torch_path(layer.name)}.weight", layer.embeddings)]


def _rules() -> dict[type, Callable[[Any], list[Link]]]:
    from keras import layers

    return {
        layers.Dense: _dense,
        layers.Conv2D: _conv,
        layers.DepthwiseConv2D: _depthwise,
        layers.Conv2DTranspose: _conv,
        layers.BatchNormalization: _batch_norm,
        layers.LayerNormalization: _affine_norm,
        layers.GroupNormalization: _affine_norm,
        layers.Embedding: _embedding,
    }


def keras_links(model: Any) -> list[Link]:
    """Every link of a Keras nnzoo model; raises if a weight-bearing layer has no rule."""
    rules = _rules()
    links: list[Link] = []
    unruled: list[str] = []
    for layer in model.layers:
        if hasattr(layer, "torch_links"):
            links += layer.torch_links()
            continue
        if not layer.weights:
            continue
        rule = next((r for cls, r in rules.items() if type(layer) is cls), None)
        rule = rule or next((r for cls, r in rules.items() if isinstance(layer, cls)), None)
        if rule is None:
            unruled.append(f"{torch_path(layer.name)} ({type(layer).__name__})")
        else:
            links += rule(layer)
    covered = {id(v) for link in links for v in link.variables}
    orphans = [f"{v.path} (no link)" for v in model.weights if id(v) not in covered]
    if unruled or orphans:
        raise WeightTransferError(
            "nnzoo cannot map these Keras weights to PyTorch (no conversion rule):",
            [f"{u}: no rule for this layer type" for u in unruled] + orphans,
        )
    return links
