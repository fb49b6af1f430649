"""LSTM/GRU classifiers in PyTorch; `nnzoo/keras_impl/recurrent.py` is the same network.

The whole stack is one native `nn.LSTM`/`nn.GRU` (fused kernels, cuDNN on GPU), batch-first,
with PyTorch's own two biases per layer and direction. Padded token batches are packed
(`pack_padded_sequence`), so each sequence is read for exactly its own length and the final
states are those of its last real step, in both directions.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nnzoo.specs.recurrent import RecurrentSpec
from nnzoo.torch_impl.layers import ZooModule, dense_block, masked_mean


def step_lengths(tokens: torch.Tensor, padding_idx: int) -> torch.Tensor:
    """Each sequence's length: its count of non-padding ids, at least 1 (trailing padding)."""
    return (tokens != padding_idx).sum(dim=1).clamp(min=1)


def step_mask(lengths: torch.Tensor, time: int) -> torch.Tensor:
    """(batch, time) bool, True on each sequence's first `length` steps."""
    return torch.arange(time, device=lengths.device)[None, :] < lengths[:, None]


class Recurrent(ZooModule):
    """embedding (token input) -> `lstm`/`gru` stack -> summary -> classifier blocks -> head."""

    def __init__(self, spec: RecurrentSpec) -> None:
        super().__init__(spec)
        width = spec.input_size
        if spec.input == "tokens":
            self.embedding = nn.Embedding(spec.vocab_size, spec.embed_dim, padding_idx=spec.padding_idx)
            width = spec.embed_dim
        rnn = nn.LSTM if spec.cell == "lstm" else nn.GRU
        # Named after the cell, as in the seeds: state-dict keys read `lstm.weight_ih_l0` etc.
        self.add_module(spec.cell, rnn(
            width, spec.hidden_size, spec.num_layers, bias=True, batch_first=True,
            dropout=spec.dropout if spec.num_layers > 1 else 0.0, bidirectional=spec.bidirectional,
        ))
        widths = (spec.pooled_width, *spec.hidden_sizes)
        self.classifier = nn.ModuleList(
            dense_block(a, b, act=spec.activation, dropout=spec.head_dropout)
            for a, b in zip(widths, widths[1:])
        )
        self.head = nn.Linear(widths[-1], spec.num_classes) if spec.num_classes else nn.Identity()

    @property
    def rnn(self) -> nn.LSTM | nn.GRU:
        return getattr(self, self.spec.cell)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(top layer's outputs (batch, time, dirs*hidden), h_n, lengths or None if unpadded)."""
        spec = self.spec
        lengths = None
        if spec.input == "tokens":
            if spec.masked:
                lengths = step_lengths(x, spec.padding_idx)
            x = self.embedding(x)
        if lengths is None:
            out, state = self.rnn(x)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        h_n = state[0] if spec.cell == "lstm" else state
        return out, h_n, lengths

    def summarize(self, out: torch.Tensor, h_n: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        spec = self.spec
        if spec.summary == "final":
            # h_n: (layers * dirs, batch, hidden); the top layer's directions, forward first.
            top = h_n[-spec.directions:]
            return top.transpose(0, 1).reshape(out.shape[0], spec.pooled_width)
        if spec.summary == "last":
            if lengths is None:
                return out[:, -1]
            return out[torch.arange(out.shape[0], device=out.device), lengths.to(out.device) - 1]
        real = None if lengths is None else step_mask(lengths.to(out.device), out.shape[1])
        return masked_mean(out, real)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.summarize(*self.encode(x))
        for block in self.classifier:
            x = block(x)
        return self.head(x)


def build(spec: RecurrentSpec) -> Recurrent:
    return Recurrent(spec)
