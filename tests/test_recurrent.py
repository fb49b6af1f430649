"""The recurrent family: seeds' counts and maths, padding, batch independence, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import BACKENDS, padded, sequences

import nnzoo
from nnzoo.conversion import transfer_weights
from nnzoo.runtime import run
from nnzoo.specs.recurrent import RecurrentSpec

TINY = dict(input="tokens", vocab_size=20, embed_dim=6, padding_idx=3, hidden_size=8,
            num_layers=2, dropout=0.2, num_classes=4)


# ---- the seeds ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, summary", [("lstm", "final"), ("bilstm", "final"), ("bilstm", "last")])
def test_seed_models_load_and_agree(name: str, summary: str) -> None:
    """The seeds' modules (nn.LSTM + fc) load our state dict and compute the same numbers.

    seeds/000 reads h_n[-1] (= summary "final" for one direction); seeds/003 reads out[:, -1],
    which is summary "last" (its backward half has seen one step); "final" reads h_n[-2:].
    """
    import torch
    from torch import nn

    model = nnzoo.build(name, "torch", seed=0, summary=summary).eval()
    spec = model.spec
    lstm = nn.LSTM(spec.input_size, spec.hidden_size, spec.num_layers, batch_first=True,
                   dropout=spec.dropout, bidirectional=spec.bidirectional)
    fc = nn.Linear(spec.pooled_width, spec.num_classes)
    state = model.state_dict()
    lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")}, strict=True)
    fc.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")}, strict=True)
    x = torch.from_numpy(spec.example_input(3, 1))
    with torch.no_grad():
        out, (h_n, _) = lstm.eval()(x)
        if summary == "last":
            seed_y = fc(out[:, -1])
        else:
            seed_y = fc(torch.cat(list(h_n[-spec.directions:]), dim=1))
        np.testing.assert_allclose(model(x).numpy(), seed_y.numpy(), atol=1e-6)


# ---- padding: a padded sequence gives its result alone -----------------------------------------
CONFIGS = [dict(cell=c, bidirectional=b, summary=s)
           for c, b, s in itertools.product(("lstm", "gru"), (False, True), ("final", "last", "mean"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_padding_invariance(backend: str, config: dict) -> None:
    spec = RecurrentSpec(**TINY, **config)
    model = nnzoo.build(spec, backend, seed=1)
    seqs = sequences(spec, (5, 2, 1, 4))
    together = run(model, padded(seqs, spec.padding_idx))
    for i, s in enumerate(seqs):
        alone = run(model, s[None])
        np.testing.assert_allclose(together[i], alone[0], atol=1e-5, err_msg=f"sequence {i}")


@pytest.mark.keras
@pytest.mark.parametrize("config", CONFIGS[3:9], ids=lambda c: "-".join(map(str, c.values())))
def test_padded_batch_agrees_across_backends(config: dict) -> None:
    """After a transfer either way, both backends read the same padded batch identically."""
    spec = RecurrentSpec(**TINY, **config)
    x = padded(sequences(spec, (6, 3, 1)), spec.padding_idx)
    for src, dst in (("torch", "keras"), ("keras", "torch")):
        a, b = nnzoo.build(spec, src, seed=2), nnzoo.build(spec, dst, seed=3)
        transfer_weights(a, b)
        np.testing.assert_allclose(run(a, x), run(b, x), atol=1e-5, err_msg=f"{src}->{dst}")


# ---- batch independence -------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("overrides", [dict(input="features", input_size=5), dict(input="tokens")])
def test_batch_independence(backend: str, overrides: dict) -> None:
    spec = RecurrentSpec(**{**TINY, **overrides, "bidirectional": True, "seq_len": 5})
    model = nnzoo.build(spec, backend, seed=0)
    x = spec.example_input(3, seed=0)
    others = spec.example_input(3, seed=1)
    others[0] = x[0]
    np.testing.assert_allclose(run(model, x)[0], run(model, others)[0], atol=1e-6)


# ---- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("cell", "rnn"), ("hidden_size", 0), ("num_layers", 0), ("input_size", -1),
    ("summary", "max"), ("padding_idx", 20), ("dropout", 1.0), ("num_classes", -1),
    ("hidden_sizes", (4, 0)), ("bidirectional", "yes"),
])
def test_validation(field: str, value: object) -> None:
    with pytest.raises(nnzoo.SpecError) as err:
        RecurrentSpec(**{**TINY, field: value})
    assert err.value.field.startswith(field)
    assert repr(value) in str(err.value) or str(value) in str(err.value)


@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lstm_takes_kerass_loop_where_its_cudnn_route_disagrees(dtype: str) -> None:
    """On Keras's JAX backend the cuDNN LSTM route gave NaN in float64 and a backward sequence in
    the wrong order (test_parity_on_gpu, H200): such an LSTM is built to take Keras's own loop.
    Elsewhere, and for GRUs, Keras's choice ("auto") stands."""
    import keras

    from nnzoo.keras_impl.recurrent import TorchGRU, TorchLSTM

    on_jax = keras.backend.backend() == "jax"
    forward, backward = TorchLSTM(4, dtype=dtype), TorchLSTM(4, go_backwards=True, dtype=dtype)
    assert forward.use_cudnn == (False if on_jax and dtype == "float64" else "auto")
    assert backward.use_cudnn == (False if on_jax else "auto")
    assert TorchGRU(4, go_backwards=True, dtype=dtype).use_cudnn == "auto"


@pytest.mark.keras
@pytest.mark.parametrize("name", ["bilstm", "gru"])
def test_an_eager_call_compiles_nothing_once_warm(name: str, caplog: pytest.LogCaptureFixture) -> None:
    """Keras's loop is a `lax.scan` on JAX, which JAX compiled afresh on every eager call and
    kept (measured: ~4 MB and 0.5-7 s per call of the same model). nnzoo's layers walk the steps
    when eager, so a second call of the same model compiles nothing; traced, they keep the scan."""
    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("JAX only: the other Keras backends run the loop without compiling it")
    import logging

    import jax

    spec = nnzoo.get_spec(name).replace(hidden_size=8, embed_dim=8, vocab_size=50).quick()
    model = nnzoo.build(spec, "keras", seed=0)
    x = spec.example_input(2)
    run(model, x)  # the first call compiles each operation once for its shape
    with caplog.at_level(logging.DEBUG, logger="jax"), jax.log_compiles():
        run(model, x)
    compiled = [r.getMessage() for r in caplog.records if "ompil" in r.getMessage()]
    assert compiled == [], compiled[:3]
