"""Recurrent classifiers: an LSTM or GRU stack over feature vectors or embedded token ids.

Summaries of the top layer's sequence (`summary`):
  final  the final hidden state of each direction, concatenated (forward, backward) -- for a
         backward direction that is the state after reading the whole sequence right to left;
  last   the top layer's output at each sequence's last real step; for a bidirectional stack the
         backward half there has read ONE step only (seeds/003's `out[:, -1]`: kept for fidelity);
  mean   the mean of the top layer's outputs over each sequence's real steps.

Padding (token inputs): sequences are padded at the end with `padding_idx`. A sequence's length
is the number of its non-padding tokens (at least 1), and exactly its first `length` steps are
read, in both backends: PyTorch packs the batch (`pack_padded_sequence`, which keeps the fused
native LSTM/GRU), Keras passes the equivalent right-padded step mask to its native LSTM/GRU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nnzoo.specs.base import Activation, IOKind, TokenSpec


@dataclass(frozen=True, kw_only=True)
class RecurrentSpec(TokenSpec):
    """An LSTM/GRU classifier on (batch, time, input_size) features or (batch, time) token ids.

    Biases follow PyTorch: every layer and direction has an input bias and a recurrent bias
    (LSTM 8*hidden, GRU 6*hidden numbers); the Keras build carries both (see keras_impl).
    `input_size` is read for feature input only; `vocab_size`, `embed_dim` and `padding_idx`
    for token input only (padding_idx=None: no padding). `dropout` acts between stacked layers
    (PyTorch's `nn.LSTM(dropout=)`), so it does nothing with one layer; `head_dropout` follows
    each hidden classifier layer. `seq_len` sizes example inputs only: any length is accepted.
    """

    family = "recurrent"

    cell: Literal["lstm", "gru"] = "lstm"
    input: Literal["features", "tokens"] = "features"
    input_size: int = 100
    vocab_size: int = 1000
    embed_dim: int = 128
    padding_idx: int | None = 0
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    summary: Literal["final", "last", "mean"] = "final"
    hidden_sizes: tuple[int, ...] = ()
    activation: Activation = "relu"
    head_dropout: float = 0.0
    num_classes: int = 10
    seq_len: int = 16

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def pooled_width(self) -> int:
        """Width of the summary vector (both directions concatenated)."""
        return self.hidden_size * self.directions

    @property
    def input_kind(self) -> IOKind:
        return "tokens" if self.input == "tokens" else "sequence"

    def input_shape(self) -> tuple[int, ...]:
        return (self.seq_len,) if self.input == "tokens" else (self.seq_len, self.input_size)


SPEC = RecurrentSpec

VARIANTS = {
    "lstm": (
        RecurrentSpec(cell="lstm", input_size=100, hidden_size=128, num_layers=2, dropout=0.3,
                      num_classes=10),
        "2-layer LSTM on 100 features, final hidden state -> 10 classes "
        "(seeds/000 LSTMPyTorch: 251,146 params)",
        {"trainable": 251_146},
    ),
    "bilstm": (
        RecurrentSpec(cell="lstm", input_size=100, hidden_size=128, num_layers=2,
                      bidirectional=True, dropout=0.3, num_classes=10),
        "2-layer bidirectional LSTM, final states of both directions -> 10 classes "
        "(seeds/003 SequenceModel: 633,354 params; the seed read out[:, -1] = summary 'last')",
        {"trainable": 633_354},
    ),
    "gru": (
        RecurrentSpec(cell="gru", input="tokens", vocab_size=1000, embed_dim=64, padding_idx=0,
                      hidden_size=128, num_layers=2, dropout=0.1, summary="mean", num_classes=10),
        "2-layer GRU over embedded token ids (padding id 0), mean over real steps -> 10 classes",
    ),
}
