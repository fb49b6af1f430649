"""What tf2onnx (Keras's ONNX route on TensorFlow) lacks for nnzoo's graphs, registered on demand.

TensorFlow computes the exact GELU as `0.5 * x * erfc(-x / sqrt(2))`, and tf2onnx 1.17 has no
rule for `Erfc` (ONNX has `Erf` only): the ViT, the MLP and every model with `activation="gelu"`
would fail to load in onnxruntime ("No Op registered for Erfc"). The rule below writes
`erfc(x) = 1 - erf(x)`; for the large positive arguments where that loses relative precision,
erfc is below float32's resolution of 1 anyway, and GELU multiplies it by x/2 -> 0.
"""

from __future__ import annotations

_REGISTERED = False


def register() -> None:
    """Add the `Erfc` rule to tf2onnx's handler table (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    import numpy as np
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:  # noqa: F841  (registered by the decorator)
        @classmethod
        def version_9(cls, ctx, node, **kwargs):  # type: ignore[no-untyped-def]  # noqa: ANN001,ANN003,ANN206
            node.type = "Erf"  # the node now computes erf(x); a Sub after it gives 1 - erf(x)
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
            one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
            out = node.output[0]
            sub = ctx.insert_new_node_on_output("Sub", out, inputs=[one.output[0], out],
                                                name=utils.make_name(f"{node.name}_erfc"))
            ctx.copy_shape(out, sub.output[0])

    _REGISTERED = True
