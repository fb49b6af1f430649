"""FLOPs and memory from the spec: checked against PyTorch's own FLOP counter, explained where
that counter is blind (fused attention, recurrent kernels), for every registered model."""

from __future__ import annotations

import math
import sys

import pytest

import nnzoo
from nnzoo.costs import DTYPE_BYTES, flops
from nnzoo.tracing import trace

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402


def counted(name: str, device: str = "meta", train: bool = False, **overrides: object) -> int:
    """torch.utils.flop_counter's total for one example of a registered model."""
    from nnzoo import backends

    spec = nnzoo.get_spec(name, **overrides)
    with torch.device(device):
        model = backends.build_native(spec, "torch", seed=0)
    model.train(train)
    x = torch.from_numpy(spec.example_input(1)).to(device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def present(*names: str) -> list[str]:
    return [n for n in names if n in nnzoo.list_models()]


@pytest.mark.parametrize("name", nnzoo.list_models())
def test_every_model_has_a_cost(name: str) -> None:
    cost = flops(name)
    spec = nnzoo.get_spec(name)
    assert cost.flops > 0 and cost.output == spec.output_shape(1)
    assert cost.params == sum(c.params for c in cost.layers) > 0
    assert cost.param_bytes == cost.params * 4 and cost.activation_bytes > 0


@pytest.mark.parametrize("name", present("resnet50", "convnext_tiny", "mobilenet_v3_large", "efficientnet_b0")
                         + nnzoo.list_models("cnn*"))
def test_convolutional_models_match_torch_flop_counter(name: str) -> None:
    ours, theirs = flops(name).flops, counted(name)
    assert abs(ours - theirs) <= 0.01 * theirs, (ours, theirs)


def test_attention_adds_exactly_what_fused_attention_hides() -> None:
    """On the CPU, PyTorch's fused attention kernel is invisible to FlopCounterMode: in training
    mode it counts the projections and the MLP but not q @ k^T and attn @ v (2 * 2 * batch *
    heads * seq^2 * head_dim per layer); nnzoo counts them, and the difference is exactly those
    products. (In eval mode, with an even number of heads, MultiheadAttention's fast path hides
    the projections too.)"""
    name = "vit_ti_16" if "vit_ti_16" in nnzoo.list_models() else "transformer_seed"
    cost = flops(name)
    spec = cost.spec
    seq = spec.seq_length if spec.family == "vit" else spec.seq_len
    per_layer = 2 * 2 * 1 * spec.num_heads * seq**2 * (spec.embed_dim // spec.num_heads)
    assert cost.attention_flops == spec.depth * per_layer
    assert cost.flops - counted(name, "cpu", train=True) == cost.attention_flops


@pytest.mark.slow
def test_vit_b_16_numbers() -> None:
    if "vit_b_16" not in nnzoo.list_models():
        pytest.skip("vit_b_16 is not registered")
    cost = flops("vit_b_16")
    assert round(cost.flops / 1e9, 1) == 35.1
    assert round(counted("vit_b_16", "cpu", train=True) / 1e9, 1) == 33.7


def _rnn(name: str) -> object:
    model = trace(nnzoo.get_spec(name)).model
    return next(m for m in model.modules() if type(m).__name__ in ("LSTM", "GRU"))


def unrolled(rnn: object, x: torch.Tensor) -> None:
    """Every gate product of a stacked (bi)LSTM/GRU, step by step (the values are not used)."""
    from torch.nn import functional as F

    dirs = 2 if rnn.bidirectional else 1
    seq = x
    for layer in range(rnn.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            h = seq.new_zeros(seq.shape[0], rnn.hidden_size)
            steps = []
            for t in range(seq.shape[1]):
                gates = F.linear(seq[:, t], getattr(rnn, "weight_ih" + sfx), getattr(rnn, "bias_ih" + sfx))
                gates = gates + F.linear(h, getattr(rnn, "weight_hh" + sfx), getattr(rnn, "bias_hh" + sfx))
                h = torch.tanh(gates[:, : rnn.hidden_size])
                steps.append(h)
            outs.append(torch.stack(steps, 1))
        seq = torch.cat(outs, -1)


@pytest.mark.parametrize("name", nnzoo.list_models(family="recurrent"))
def test_recurrent_flops_count_every_step(name: str) -> None:
    spec = nnzoo.get_spec(name)
    rnn = _rnn(name)
    width = spec.input_size if spec.input == "features" else spec.embed_dim
    with torch.device("cpu"):
        ref = type(rnn)(width, spec.hidden_size, spec.num_layers, batch_first=True,
                        bidirectional=spec.bidirectional)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unrolled(ref, torch.zeros(1, spec.seq_len, width))
    layer = next(c for c in flops(name).layers if c.kind in ("LSTM", "GRU"))
    assert layer.flops == counter.get_total_flops()


@pytest.mark.parametrize("name", nnzoo.list_models(family="recurrent"))
def test_recurrent_flops_scale_with_sequence_length(name: str) -> None:
    short, long = flops(name, seq_len=8), flops(name, seq_len=32)
    rnn = [next(c.flops for c in cost.layers if c.kind in ("LSTM", "GRU")) for cost in (short, long)]
    assert rnn[1] == 4 * rnn[0]
    head = sum(c.flops for c in short.layers if c.kind not in ("LSTM", "GRU"))
    assert long.flops - head == 4 * (short.flops - head)


def test_memory_for_batch_and_dtype() -> None:
    one, many = flops("cnn_small"), flops("cnn_small", batch=8, dtype="float16")
    assert many.flops == 8 * one.flops
    assert many.param_bytes == one.params * DTYPE_BYTES["float16"] == one.param_bytes // 2
    assert many.activation_bytes == 8 * one.activation_bytes // 2
    # cnn_small's first conv output: 32 x 32 x 32 floats
    first = one.layers[0]
    assert first.output == (1, 32, 32, 32) and first.activations == math.prod(first.output)


def test_api_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from nnzoo.cli import main

    assert nnzoo.flops("mlp_small").flops == flops("mlp_small").flops
    with pytest.raises(nnzoo.SpecError, match="dtype"):
        flops("mlp_small", dtype="int3")
    assert main(["flops", "mlp_small", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "hidden.0.fc" in out and "total (mlp_small, batch 2, float32)" in out


def test_import_nnzoo_flops_imports_no_framework() -> None:
    import subprocess

    code = ("import sys, nnzoo, nnzoo.costs, nnzoo.tracing, nnzoo.differences, nnzoo.explain, nnzoo.diagram, "
            "nnzoo.report; print('torch' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_layer_type_without_a_formula_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer the counter has no formula for is an error naming it, never 0 FLOPs; layers that
    do no multiply-accumulate work are listed (NO_MACS) and priced at 0."""
    from torch import nn

    import nnzoo.torch_impl.mlp as torch_mlp
    from nnzoo.costs import call_flops
    from nnzoo.errors import UnknownLayerError
    from nnzoo.tracing import Call

    class Scale(nn.Module):  # a toy layer type: it holds a weight and multiplies by it
        def __init__(self, width: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(width))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.weight

    real = torch_mlp.build

    def with_toy(spec: object) -> nn.Module:
        model = real(spec)
        model.head = Scale(spec.features)
        return model

    monkeypatch.setattr(torch_mlp, "build", with_toy)
    with pytest.raises(UnknownLayerError, match=r"no formula[\s\S]*head \(Scale\)"):
        flops("mlp_small")
    assert call_flops(Call("act", nn.ReLU(), [(1, 4)], [(1, 4)])) == (0, 0)
    with pytest.raises(UnknownLayerError, match=r"Scale \(toy\)"):
        call_flops(Call("toy", Scale(4), [(1, 4)], [(1, 4)]))
