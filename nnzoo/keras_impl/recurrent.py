"""LSTM/GRU classifiers in Keras; `nnzoo/torch_impl/recurrent.py` is the same network.

Biases. PyTorch adds two bias vectors to every gate pre-activation, `b_ih + b_hh`; Keras's LSTM
cell has one. Their sum is all the maths sees, but the counts and the weight transfer need both,
so `TorchLSTMCell` / `TorchGRUCell` hold them as two variables (`input_bias`, `recurrent_bias`)
and hand Keras their sum (LSTM) or stack (GRU, `reset_after=True`: the same gate maths as PyTorch)
through the cell's `bias` attribute. Everything else is Keras's own `LSTM`/`GRU` layer -- its
`inner_loop` still dispatches to the fused cuDNN kernel on GPU, which receives that `bias`.

Layers. PyTorch keeps a whole stack in one module (`lstm.weight_ih_l0`, `..._l1_reverse`); Keras
gets one `RecurrentLayer` per stacked layer, named `lstm.l0`, `lstm.l1`, ..., holding a forward and
(when bidirectional) a backward native RNN, whose `torch_links` map them to those keys. Gate order:
LSTM i,f,g,o = Keras i,f,c,o; GRU PyTorch r,z,n vs Keras z,r,h -- the links swap the first two.

Padding. A boolean step mask (right-padded: each sequence's first `length` steps) goes to the
native layers' `mask`; a backward layer reads each sequence from its own last real step.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

from nnzoo.keras_impl.layers import ZooModel, dense_block, masked_mean, model_input, serializable
from nnzoo.specs.recurrent import RecurrentSpec


class _TwoBiases:
    """Mixin for a Keras RNN cell: PyTorch's two biases as variables, Keras's `bias` derived."""

    gates: int

    def build(self, input_shape: Any) -> None:
        n = self.units * self.gates
        self.kernel = self.add_weight(shape=(input_shape[-1], n), name="kernel",
                                      initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(shape=(self.units, n), name="recurrent_kernel",
                                                initializer=self.recurrent_initializer)
        self.input_bias = self.add_weight(shape=(n,), name="input_bias",
                                          initializer=self.initial_input_bias)
        self.recurrent_bias = self.add_weight(shape=(n,), name="recurrent_bias",
                                              initializer="zeros")
        self.built = True

    def initial_input_bias(self, shape: Any, dtype: Any = None) -> Any:
        return ops.zeros(shape, dtype=dtype)


@serializable
class TorchLSTMCell(_TwoBiases, layers.LSTMCell):
    gates = 4

    @property
    def bias(self) -> Any:
        return ops.add(self.input_bias, self.recurrent_bias)

    def initial_input_bias(self, shape: Any, dtype: Any = None) -> Any:
        """Keras's `unit_forget_bias`: the forget gate starts open."""
        u = self.units
        return ops.concatenate([ops.zeros((u,), dtype), ops.ones((u,), dtype),
                                ops.zeros((2 * u,), dtype)])


@serializable
class TorchGRUCell(_TwoBiases, layers.GRUCell):
    gates = 3

    @property
    def bias(self) -> Any:
        """Keras's reset_after layout: (2, 3 * units) = input bias, recurrent bias."""
        return ops.reshape(ops.concatenate([self.input_bias, self.recurrent_bias]), (2, -1))


class _NativeRNN:
    """Keras's own LSTM/GRU layer around a two-bias cell.

    `LSTM.__init__`/`GRU.__init__` construct their stock cell, so this calls `RNN.__init__` with
    ours and sets what those constructors set; the layer's `inner_loop` (cuDNN dispatch) is kept.
    """

    cell_class: type

    def __init__(self, units: int, go_backwards: bool = False, **kwargs: Any) -> None:
        cell = self.cell_class(units, name=f"{self.cell_class.__name__.lower()}")
        layers.RNN.__init__(self, cell, return_sequences=True, return_state=True,
                            go_backwards=go_backwards, **kwargs)
        self.input_spec = layers.InputSpec(ndim=3)
        self.use_cudnn = "auto" if self.cudnn_agrees() else False
        self.supports_jit = False  # as Keras does where cuDNN may run: its kernels are not XLA

    def cudnn_agrees(self) -> bool:
        """Whether Keras's cuDNN route gives what its own step loop gives, for this layer.

        Measured on an H200 (Keras 3.15.1, JAX 0.11.2): on the JAX backend Keras sends an LSTM to
        `jax.experimental.rnn`'s cuDNN kernel, whose float64 outputs were NaN, and which hands a
        `go_backwards` layer's sequence back in time order where Keras's loop (and every other
        backend) returns it reversed: a bidirectional LSTM came out 0.06-0.3 off. Those LSTMs take
        Keras's loop; a forward float32 LSTM keeps cuDNN (1.9e-7 from PyTorch's, inside the bound).
        On CPU the loop runs anyway.
        """
        from nnzoo.backends import keras_backend

        if keras_backend() != "jax" or not isinstance(self, layers.LSTM):
            return True
        return not self.go_backwards and self.compute_dtype != "float64"

    def inner_loop(self, sequences: Any, initial_state: Any, mask: Any, training: bool = False
                   ) -> Any:
        """On JAX, an eager call walks the time steps in Python (Keras's `unroll`); traced (jit,
        gradients, shapes) the loop stays a `lax.scan`. JAX compiles an eager scan afresh on
        every call -- Keras's loop closes over new functions each time -- and its dispatch cache
        keeps every one (up to 4096): measured on a 2-layer GRU, 0.5-7 s and ~4 MB per call of
        the same model. Step by step, each operation compiles once per shape."""
        from nnzoo.backends import keras_backend

        unroll = self.unroll
        if keras_backend() == "jax":
            import jax

            self.unroll = not isinstance(sequences, jax.core.Tracer)
        try:
            return super().inner_loop(sequences, initial_state, mask, training)  # type: ignore[misc]
        finally:
            self.unroll = unroll

    def compute_mask(self, *args: Any, **kwargs: Any) -> None:
        """No implicit Keras mask leaves the layer: nnzoo passes its step mask explicitly."""
        return None

    def get_config(self) -> dict[str, Any]:
        return {**layers.Layer.get_config(self), "units": self.units,
                "go_backwards": self.go_backwards}


@serializable
class TorchLSTM(_NativeRNN, layers.LSTM):
    cell_class = TorchLSTMCell


@serializable
class TorchGRU(_NativeRNN, layers.GRU):
    cell_class = TorchGRUCell


def _gate_order(cell: str) -> list[int]:
    """Blocks of PyTorch's gate axis in Keras's order (a permutation that is its own inverse)."""
    return [0, 1, 2, 3] if cell == "lstm" else [1, 0, 2]


@serializable
class RecurrentLayer(layers.Layer):
    """Layer `index` of a PyTorch `nn.LSTM`/`nn.GRU` stack: both directions, batch-first.

    call(x, real) -> (outputs (batch, time, dirs * units) in time order, final states
    (batch, dirs * units), forward first). `real`: (batch, time) right-padded bool mask, or None.
    """

    def __init__(self, cell: str, units: int, index: int, bidirectional: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cell, self.units, self.index, self.bidirectional = cell, units, index, bidirectional
        rnn = TorchLSTM if cell == "lstm" else TorchGRU
        self.directions = [rnn(units, name="forward")]
        if bidirectional:
            self.directions.append(rnn(units, go_backwards=True, name="backward"))

    def build(self, input_shape: Any) -> None:
        for rnn in self.directions:
            rnn.build(input_shape)
        self.built = True

    def call(self, x: Any, real: Any = None) -> tuple[Any, Any]:
        outputs, finals = [], []
        for rnn in self.directions:
            seq, h, *_ = rnn(x, mask=real)
            outputs.append(ops.flip(seq, axis=1) if rnn.go_backwards else seq)
            finals.append(h)
        if len(self.directions) == 1:
            return outputs[0], finals[0]
        return ops.concatenate(outputs, axis=-1), ops.concatenate(finals, axis=-1)

    def compute_output_spec(self, x: Any, real: Any = None) -> tuple[Any, Any]:
        width = self.units * len(self.directions)
        return (keras.KerasTensor((*x.shape[:2], width), x.dtype),
                keras.KerasTensor((x.shape[0], width), x.dtype))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cell": self.cell, "units": self.units,
                "index": self.index, "bidirectional": self.bidirectional}

    def torch_links(self) -> list[Any]:
        from nnzoo.links import Link

        order = _gate_order(self.cell)

        def reorder(t: np.ndarray) -> np.ndarray:  # along the gate axis 0, torch <-> keras
            return np.concatenate([np.split(t, len(order))[i] for i in order])

        links = []
        for rnn, suffix in zip(self.directions, ("", "_reverse")):
            c, key = rnn.cell, f"{self.cell}.{{}}_l{self.index}{suffix}"
            for torch_name, var, matrix in (("weight_ih", c.kernel, True),
                                            ("weight_hh", c.recurrent_kernel, True),
                                            ("bias_ih", c.input_bias, False),
                                            ("bias_hh", c.recurrent_bias, False)):
                if matrix:  # keras (in, gates*units) <-> torch (gates*units, in)
                    links.append(Link(key.format(torch_name), (var,),
                                      lambda a: reorder(a[0].T), lambda t: [reorder(t).T]))
                else:
                    links.append(Link(key.format(torch_name), (var,),
                                      lambda a: reorder(a[0]), lambda t: [reorder(t)]))
        return links


@serializable
class StepMask(layers.Layer):
    """Token ids -> (batch, time) bool: each sequence's first max(1, non-padding count) steps."""

    def __init__(self, padding_idx: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding_idx = padding_idx

    def call(self, tokens: Any) -> Any:
        lengths = ops.maximum(ops.sum(ops.cast(tokens != self.padding_idx, "int32"), axis=1), 1)
        return ops.arange(ops.shape(tokens)[1], dtype="int32")[None, :] < lengths[:, None]

    def compute_output_spec(self, tokens: Any) -> Any:
        return keras.KerasTensor(tokens.shape, "bool")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding_idx": self.padding_idx}


@serializable
class LastStep(layers.Layer):
    """Each sequence's output at its last real step (the last step if `real` is None)."""

    def call(self, x: Any, real: Any = None) -> Any:
        if real is None:
            return x[:, -1]
        last = ops.sum(ops.cast(real, "int32"), axis=1) - 1
        return ops.take_along_axis(x, last[:, None, None], axis=1)[:, 0]


def graph(spec: RecurrentSpec) -> tuple[Any, Any]:
    if spec.input == "tokens":
        inputs = model_input((None,), dtype="int64", name="tokens")
        real = StepMask(spec.padding_idx, name="lengths")(inputs) if spec.masked else None
        x = layers.Embedding(spec.vocab_size, spec.embed_dim, name="embedding")(inputs)
    else:
        inputs = model_input((None, spec.input_size), name="features")
        real, x = None, inputs
    for i in range(spec.num_layers):
        if i and spec.dropout:  # PyTorch's `dropout`: on every layer's outputs but the last
            x = layers.Dropout(spec.dropout, name=f"{spec.cell}-l{i - 1}-drop")(x)
        x, final = RecurrentLayer(spec.cell, spec.hidden_size, i, spec.bidirectional,
                                  name=f"{spec.cell}-l{i}")(x, real)
    if spec.summary == "final":
        x = final
    elif spec.summary == "last":
        x = LastStep(name="summary")(x, real)
    else:
        x = masked_mean(x, real, name="summary")
    for i, width in enumerate(spec.hidden_sizes):
        x = dense_block(x, width, act=spec.activation, dropout=spec.head_dropout,
                        name=f"classifier-{i}")
    if spec.num_classes:
        x = layers.Dense(spec.num_classes, name="head")(x)
    return inputs, x


def build(spec: RecurrentSpec) -> ZooModel:
    return ZooModel(spec)
