"""Small shared pieces of the Keras builds; `nnzoo/torch_impl/layers.py` is their twin.

Every argument on which PyTorch and Keras defaults differ is passed explicitly from the spec:
batch-norm momentum is converted from the PyTorch convention (`1 - m`), padding is explicit and
symmetric (Keras `"same"` pads bottom/right first when the stride is > 1, PyTorch pads evenly).
Twins take the same arguments in the same order: where the PyTorch helper takes the input's
width `c_in`, the helper here takes the input tensor `x`; every helper that makes layers ends
with the keyword-only `name`, the PyTorch module path of its twin (`-` for `.`).
"""

from __future__ import annotations

import importlib
from typing import Any

import keras
from keras import layers, ops

from nnzoo.specs.base import Spec

serializable = keras.saving.register_keras_serializable(package="nnzoo")


@serializable
class ZooModel(keras.Model):
    """Base of every nnzoo Keras model: a functional graph built from a spec.

    The config is the spec's dict, so `keras.models.load_model` rebuilds it with no
    `custom_objects` (importing nnzoo registers the class).
    """

    def __init__(self, spec: Spec | dict[str, Any], **kwargs: Any) -> None:
        if not isinstance(spec, Spec):
            from nnzoo.registry import spec_from_dict

            spec = spec_from_dict(spec)
        family = importlib.import_module(f"nnzoo.keras_impl.{spec.family}")
        inputs, outputs = family.graph(spec)
        kwargs.setdefault("name", spec.family)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.spec = spec

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        shape = getattr(x, "shape", None)
        if shape is not None:
            self.spec.check_input_dtype(getattr(x, "dtype", "float32"))
            self.spec.check_input_shape(tuple(shape), channels_last=True)
        return super().__call__(x, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ZooModel:
        """Built as an unseeded build is (`rng.unseeded`): loading a `.keras` file overwrites
        these values, and on JAX Keras's own draws would compile one program per weight shape."""
        from nnzoo.keras_impl import rng

        with rng.unseeded():
            return cls(**config)


@serializable
class Act(layers.Layer):
    """The activation named by the spec (`gelu` exact, `gelu_tanh` approximate: never a default)."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind

    def call(self, x: Any) -> Any:
        if self.kind == "relu":
            return ops.relu(x)
        if self.kind == "gelu":
            return ops.gelu(x, approximate=False)
        if self.kind == "gelu_tanh":
            return ops.gelu(x, approximate=True)
        if self.kind == "silu":
            return ops.silu(x)
        if self.kind == "tanh":
            return ops.tanh(x)
        if self.kind == "relu6":
            return ops.relu6(x)
        if self.kind == "hardswish":  # x * relu6(x + 3) / 6, as PyTorch's
            return ops.hard_swish(x)
        if self.kind == "hardsigmoid":  # relu6(x + 3) / 6 (Keras 3; Keras 2's was 0.2 x + 0.5)
            return ops.hard_sigmoid(x)
        if self.kind == "sigmoid":
            return ops.sigmoid(x)
        raise ValueError(f"unknown activation {self.kind!r}")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kind": self.kind}


@serializable
class Pad2D(layers.Layer):
    """Symmetric constant padding of an NHWC tensor (`-inf` before a max pool, like PyTorch)."""

    def __init__(self, padding: int, value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding, self.value = padding, value

    def call(self, x: Any) -> Any:
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=self.value)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self.padding, "value": self.value}


def _replicas_in_sync() -> int:
    """The replicas a synchronized batch norm reduces over: `synchronized=True` is TensorFlow's
    (`tf.distribute`); outside a strategy, 1."""
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    return ctx.num_replicas_in_sync if ctx is not None else 1


@serializable
class BatchNorm(layers.BatchNormalization):
    """BatchNormalization that computes in its own dtype and updates its moving variance with the
    *unbiased* batch variance, as PyTorch does.

    PyTorch updates `running_var` with the batch variance times n / (n - 1) (Bessel's
    correction); Keras uses the biased variance. Both normalise with the biased one. Without
    this, one training step moves the two builds' statistics apart by a factor of up to 2.
    Keras also computes in `result_type(input, "float32")`, which its dtype rules make float32
    even for a float64 input: a float64 build would normalise in float32 (measured: 1e-7
    relative on Keras's JAX and PyTorch backends). Here the arithmetic is float64 when the layer
    is, and float32 for float16/bfloat16 inputs, as in Keras. `synchronized` (TensorFlow's
    `tf.distribute`) is honoured: the statistics and the count are the global batch's.
    """

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        dtype = "float64" if self.compute_dtype == "float64" else "float32"
        x = ops.cast(inputs, dtype)
        if training and self.trainable:
            axis = self.axis % len(x.shape)
            axes = [i for i in range(len(x.shape)) if i != axis]
            mean, var = ops.moments(x, axes=axes, synchronized=self.synchronized)
            n = ops.cast(ops.size(x), dtype) / float(x.shape[axis])
            if self.synchronized:  # the global batch's count (equal replica batches)
                n = n * float(_replicas_in_sync())
            unbiased = var * n / ops.maximum(n - 1.0, 1.0)
            m = self.momentum
            moving_mean = ops.cast(self.moving_mean, dtype)
            moving_var = ops.cast(self.moving_variance, dtype)
            self.moving_mean.assign(ops.cast(moving_mean * m + mean * (1.0 - m),
                                             self.moving_mean.dtype))
            self.moving_variance.assign(ops.cast(moving_var * m + unbiased * (1.0 - m),
                                                 self.moving_variance.dtype))
        else:
            mean = ops.cast(self.moving_mean, dtype)
            var = ops.cast(self.moving_variance, dtype)
        y = ops.batch_normalization(
            x, mean, var, axis=self.axis, epsilon=self.epsilon,
            offset=ops.cast(self.beta, dtype) if self.center else None,
            scale=ops.cast(self.gamma, dtype) if self.scale else None,
        )
        return ops.cast(y, self.compute_dtype)


def model_input(shape: tuple[int | None, ...], *, dtype: str | None = None, name: str) -> Any:
    """`keras.Input` in the build's dtype (or `dtype`, for token ids).

    Keras's Input defaults to float32 whatever the dtype policy; on the JAX and PyTorch backends
    a float64 build would then round its input to float32 before the first layer.
    """
    if dtype is not None:  # token ids: int64 where the backend has it (TF), else int32, as Keras
        dtype = keras.backend.result_type(dtype)  # would convert them anyway (JAX warns if asked)
    return keras.Input(shape=shape, dtype=dtype or keras.config.dtype_policy().compute_dtype,
                       name=name)


@serializable
class MaskedMean(layers.Layer):
    """Mean of (batch, time, width) over the steps where `real` is True (all steps if None)."""

    def call(self, x: Any, real: Any = None) -> Any:
        if real is None:
            return ops.mean(x, axis=1)
        total = ops.sum(ops.where(ops.expand_dims(real, -1), x, ops.zeros_like(x)), axis=1)
        count = ops.maximum(ops.sum(ops.cast(real, x.dtype), axis=1, keepdims=True), 1.0)
        return total / count


@serializable
class FirstToken(layers.Layer):
    """(batch, time, width) -> (batch, width) at position 0 (the class token)."""

    def call(self, x: Any) -> Any:
        return x[:, 0]


def activation(kind: str, *, name: str) -> layers.Layer:
    return Act(kind, name=name)


def norm(spec: Any, kind: str, *, name: str) -> layers.Layer:
    """Batch/group/layer norm over the last axis, eps and momentum from the spec (torch convention)."""
    if kind == "batch":
        return BatchNorm(axis=-1, epsilon=spec.bn_eps, momentum=1.0 - spec.bn_momentum, name=name)
    if kind == "group":
        return layers.GroupNormalization(groups=spec.gn_groups, axis=-1, epsilon=spec.gn_eps, name=name)
    if kind == "layer":
        return layers.LayerNormalization(axis=-1, epsilon=spec.ln_eps, name=name)
    raise ValueError(f"unknown norm {kind!r}")


def dense_block(x: Any, width: int, *, act: str, dropout: float, bias: bool = True,
                norm_layer: layers.Layer | None = None, name: str) -> Any:
    """fc -> [norm] -> act -> [drop]: an MLP's hidden layer, and a classifier head's."""
    x = layers.Dense(width, use_bias=bias, name=f"{name}-fc")(x)
    if norm_layer is not None:
        x = norm_layer(x)
    x = activation(act, name=f"{name}-act")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}-drop")(x)
    return x


def conv_padding(x: Any, kernel: int, stride: int, padding: int, *, name: str) -> tuple[Any, str]:
    """Apply PyTorch's symmetric `padding`; returns the tensor and the Keras padding mode to use.

    `"same"` is used only where it equals PyTorch's padding (stride 1, odd kernel, k // 2).
    """
    if padding == 0:
        return x, "valid"
    if stride == 1 and kernel % 2 == 1 and padding == kernel // 2:
        return x, "same"
    return layers.ZeroPadding2D(padding, name=f"{name}-pad")(x), "valid"


def conv2d(x: Any, c_out: int, kernel: int, *, stride: int = 1, padding: int = 0, bias: bool,
           groups: int = 1, name: str) -> Any:
    """A Conv2D equal to `nn.Conv2d(.., kernel, stride, padding, bias=bias, groups=groups)`."""
    x, mode = conv_padding(x, kernel, stride, padding, name=name)
    return layers.Conv2D(
        c_out, kernel, strides=stride, padding=mode, use_bias=bias, groups=groups, name=name
    )(x)


def pool2d(x: Any, kind: str, size: int, stride: int, *, padding: int = 0, name: str) -> Any:
    """Max or average pooling equal to PyTorch's, padding included."""
    if padding:
        fill = float("-inf") if kind == "max" else 0.0
        x = Pad2D(padding, fill, name=f"{name}-pad")(x)
    cls = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    return cls(size, strides=stride, padding="valid", name=name)(x)


def masked_mean(x: Any, real: Any, *, name: str) -> Any:
    """Mean of (batch, time, width) over the steps where `real` (batch, time) is True (all steps
    if None): the recurrent summary and the transformer's pooling."""
    return MaskedMean(name=name)(x, real)


def first_token(x: Any, *, name: str) -> Any:
    """(batch, time, width) -> (batch, width) at position 0: the class token's state (ViT and
    the text transformer)."""
    return FirstToken(name=name)(x)
