"""Analytic FLOP counts of one forward pass: a multiply-add counts as 2 FLOPs.

Only the matrix-multiply-like work is counted (convolutions, dense layers, attention's two
batched products, recurrent gates): it is what a fast CPU kernel spends its time on, and what
the machine's matrix-multiply rate bounds. Element-wise work (activations, normalization,
softmax) is left out, as in the usual published counts (ResNet-50: 4.1 GMACs = 8.2 GFLOPs).

- nnzoo's models, and the references that implement the very same network (torchvision, timm,
  keras-hub at the same sizes): `nnzoo.flops` (one count from the spec, for both backends). If
  that module is absent, PyTorch's `FlopCounterMode` on the PyTorch build stands in (it misses
  the attention products of `nn.MultiheadAttention`'s fused inference path).
- keras.applications' ResNets, which are v1 (stride in the first 1x1 convolution, a few % fewer
  FLOPs than v1.5): their own traced `tf.function` graph, walked op by op (MatMul, BatchMatMul,
  Einsum, Conv2D, depthwise and transposed convolutions), each priced from its static shapes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def network_flops(name: str) -> int:
    """FLOPs of one example through registered model `name` (either backend: the same network)."""
    try:
        from nnzoo.costs import flops
    except ImportError:
        return _flop_counter(name)
    return int(flops(name).flops)


def _flop_counter(name: str) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import nnzoo

    model = nnzoo.build(name, "torch", seed=0).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.from_numpy(model.spec.example_input(1)))
    return int(counter.get_total_flops())


def _dims(t: Any) -> list[int] | None:
    shape = t.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        return None
    return shape.as_list()


def _op_flops(op: Any) -> int:
    """2 x multiply-adds of one graph op (0 for ops that are not matmul-like)."""
    kind = op.type
    if kind not in _COUNTED:
        return 0
    ins = [_dims(t) for t in op.inputs]
    out = _dims(op.outputs[0])
    if out is None or any(d is None for d in ins):
        raise ValueError(f"{kind} op {op.name} has a dynamic shape: count on a fixed-size input")
    if kind == "MatMul":
        k = ins[0][0] if op.get_attr("transpose_a") else ins[0][1]
        return 2 * math.prod(out) * k
    if kind.startswith("BatchMatMul"):
        k = ins[0][-2] if op.get_attr("adj_x") else ins[0][-1]
        return 2 * math.prod(out) * k
    if kind == "Einsum":
        spec = op.get_attr("equation").decode()
        lhs = spec.split("->")[0].split(",")
        sizes: dict[str, int] = {}
        for letters, dims in zip(lhs, ins):
            sizes.update(zip(letters, dims))
        return 2 * math.prod(sizes.values()) if len(lhs) == 2 else 0
    if kind == "Conv2D":  # filter (kh, kw, cin / groups, cout)
        kh, kw, cin, _ = ins[1]
        return 2 * math.prod(out) * kh * kw * cin
    if kind == "DepthwiseConv2dNative":  # filter (kh, kw, cin, multiplier)
        kh, kw = ins[1][:2]
        return 2 * math.prod(out) * kh * kw
    if kind == "Conv2DBackpropInput":  # a transposed convolution: filter (kh, kw, cout, cin)
        kh, kw, cout, _ = ins[1]
        return 2 * math.prod(ins[2]) * kh * kw * cout
    return 0


_COUNTED = {"MatMul", "BatchMatMulV2", "BatchMatMulV3", "BatchMatMul", "Einsum", "Conv2D",
            "DepthwiseConv2dNative", "Conv2DBackpropInput"}


def keras_flops(model: Any, x: np.ndarray) -> int:
    """FLOPs of `model(x, training=False)` (x in the model's own layout), from its TF graph."""
    import tensorflow as tf

    fn = tf.function(lambda t: model(t, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec(x.shape, tf.as_dtype(x.dtype))).graph
    # The outer graph only: the body of a tf.while_loop (a Keras RNN) is not walked, which is
    # why recurrent models are counted with the PyTorch counter.
    return sum(_op_flops(op) for op in graph.get_operations())
