"""The transformer family: the seed, padding, batch independence, positions, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import BACKENDS, padded, sequences

import nnzoo
from nnzoo.conversion import transfer_weights
from nnzoo.runtime import count_params, run
from nnzoo.specs.transformer import TransformerSpec

# Keras warns when attention runs over a single key (a one-token sequence): expected here.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")

TINY = dict(vocab_size=20, max_len=8, padding_idx=5, embed_dim=8, depth=2, num_heads=2,
            mlp_dim=12, dropout=0.1, attention_dropout=0.1, num_classes=3, seq_len=6)


# ---- the seed ----------------------------------------------------------------------------------
def seed_transformer(spec: TransformerSpec):  # noqa: ANN201
    """seeds/000's TransformerPyTorch, module for module (its attention sequence-first)."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = spec.embed_dim
            self.attention = nn.MultiheadAttention(d, spec.num_heads, dropout=0.1)
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.feedforward = nn.Sequential(nn.Linear(d, spec.mlp_dim), nn.ReLU(), nn.Dropout(0.1),
                                             nn.Linear(spec.mlp_dim, d), nn.Dropout(0.1))

        def forward(self, x):  # noqa: ANN001, ANN202
            x = self.norm1(x + self.attention(x, x, x)[0])
            return self.norm2(x + self.feedforward(x))

    class Seed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(spec.vocab_size, spec.embed_dim)
            self.transformer_blocks = nn.ModuleList(Block() for _ in range(spec.depth))
            self.fc = nn.Linear(spec.embed_dim, 10)

        def forward(self, x):  # noqa: ANN001, ANN202
            x = self.embedding(x)
            for block in self.transformer_blocks:
                x = block(x)
            return self.fc(x.mean(dim=1))

    return Seed()


def seed_keys(key: str) -> str:
    """Our state-dict key -> the seed's."""
    for ours, theirs in (("layers.", "transformer_blocks."), ("self_attention", "attention"),
                         ("ln_1", "norm1"), ("ln_2", "norm2"), ("mlp.", "feedforward."),
                         ("head.", "fc.")):
        key = key.replace(ours, theirs)
    return key


def test_seed_transformer_mixes_the_batch_ours_does_not() -> None:
    """The seed's sequence-first attention mixes samples; made batch-first it IS our variant."""
    import torch

    ours = nnzoo.build("transformer_seed", "torch", seed=0, depth=1).eval()
    seed = seed_transformer(ours.spec).eval()
    seed.load_state_dict({seed_keys(k): v for k, v in ours.state_dict().items()}, strict=True)
    x, others = ours.spec.example_input(3, 0), ours.spec.example_input(3, 1)
    others[0] = x[0]
    with torch.no_grad():
        mixed = [seed(torch.from_numpy(a))[0] for a in (x, others)]
        assert not torch.allclose(*mixed, atol=1e-3)  # sample 0 depends on samples 1 and 2
        for block in seed.transformer_blocks:
            block.attention.batch_first = True
        np.testing.assert_allclose(seed(torch.from_numpy(x)).numpy(), run(ours, x), atol=1e-5)


# ---- padding and batch independence ------------------------------------------------------------
CONFIGS = [dict(pooling=p, positional=q, norm_first=n, final_norm=n)
           for p, q, n in itertools.product(("mean", "cls"), ("learned", "sinusoidal", "none"),
                                            (True, False))]


def config_id(c: dict) -> str:
    return f"{c['pooling']}-{c['positional']}-{'pre' if c['norm_first'] else 'post'}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS[::2] + CONFIGS[1:2], ids=config_id)
def test_padding_invariance(backend: str, config: dict) -> None:
    spec = TransformerSpec(**TINY, **config)
    model = nnzoo.build(spec, backend, seed=1)
    seqs = sequences(spec, (6, 2, 1, 4))
    together = run(model, padded(seqs, spec.padding_idx))
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(together[i], run(model, s[None])[0], atol=1e-5,
                                   err_msg=f"sequence {i}")


@pytest.mark.keras
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_padded_batch_agrees_across_backends(config: dict) -> None:
    spec = TransformerSpec(**TINY, **config)
    x = padded(sequences(spec, (7, 3, 1)), spec.padding_idx)
    for src, dst in (("torch", "keras"), ("keras", "torch")):
        a, b = nnzoo.build(spec, src, seed=2), nnzoo.build(spec, dst, seed=3)
        transfer_weights(a, b)
        np.testing.assert_allclose(run(a, x), run(b, x), atol=1e-5, err_msg=f"{src}->{dst}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_batch_independence(backend: str, pooling: str) -> None:
    spec = TransformerSpec(**TINY, pooling=pooling)
    model = nnzoo.build(spec, backend, seed=0)
    x, others = spec.example_input(3, seed=0), spec.example_input(3, seed=1)
    others[0] = x[0]
    np.testing.assert_allclose(run(model, x)[0], run(model, others)[0], atol=1e-6)


def test_sinusoidal_positions_are_not_weights() -> None:
    spec = TransformerSpec(**TINY, positional="sinusoidal")
    learned = TransformerSpec(**TINY, positional="learned")
    for backend in BACKENDS:
        diff = (count_params(nnzoo.build(learned, backend)).total
                - count_params(nnzoo.build(spec, backend)).total)
        assert diff == spec.max_len * spec.embed_dim


@pytest.mark.parametrize("backend", BACKENDS)
def test_too_long_input_is_refused(backend: str) -> None:
    spec = TransformerSpec(**TINY)
    model = nnzoo.build(spec, backend)
    with pytest.raises(nnzoo.InputShapeError, match="max_len=8"):
        run(model, spec.replace(seq_len=8).example_input(1)[:, [0] * 9])


# ---- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("num_heads", 3), ("embed_dim", 0), ("depth", 0), ("mlp_dim", -4), ("positional", "rope"),
    ("pooling", "max"), ("activation", "swish"), ("ln_eps", 0.0), ("padding_idx", -1),
    ("seq_len", 9),
])
def test_validation(field: str, value: object) -> None:
    with pytest.raises(nnzoo.SpecError) as err:
        TransformerSpec(**{**TINY, field: value})
    assert err.value.field == field


def test_heads_error_names_both_numbers() -> None:
    with pytest.raises(nnzoo.SpecError, match=r"num_heads=5 .*embed_dim=768"):
        nnzoo.get_spec("transformer_base", num_heads=5)
