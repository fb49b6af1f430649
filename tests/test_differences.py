"""The registry of framework differences: every entry's effect is real (measured, nonzero) and
nnzoo's setting removes it; the generated document matches the registry; `applies` picks the
models a difference touches."""

from __future__ import annotations

from pathlib import Path

import pytest

import nnzoo
from nnzoo.differences import BY_ID, REGISTRY, applicable, main, render_markdown, sig2
from nnzoo.tracing import trace

DOC = Path(__file__).resolve().parents[1] / "docs" / "framework-differences.md"


@pytest.mark.parametrize("diff", REGISTRY, ids=[d.id for d in REGISTRY])
def test_effect_is_real_and_nnzoo_removes_it(diff) -> None:  # noqa: ANN001
    effect, residual = diff.measure(), diff.residual()
    assert effect >= (1 if diff.unit else 1e-4), f"{diff.id}: no measurable effect ({effect})"
    assert residual <= 1e-5, f"{diff.id}: nnzoo's setting leaves {residual}"
    assert diff.measure() is not None and diff.effect_text()  # cached, printable
    assert diff.title and diff.pytorch and diff.keras and diff.explanation and diff.settled_by


def test_measurements_are_cached_per_process() -> None:
    d = BY_ID["ln_eps"]
    d.measure()
    from nnzoo.differences import _measured

    hits = _measured.cache_info().hits
    d.measure()
    assert _measured.cache_info().hits == hits + 1


def test_document_is_generated_from_the_registry() -> None:
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/framework-differences.md is stale: "
        "python -m nnzoo.differences --write docs/framework-differences.md")
    assert main(["--check", str(DOC)]) == 0


def test_check_flags_a_stale_document(tmp_path: Path) -> None:
    stale = tmp_path / "doc.md"
    stale.write_text("old\n")
    assert main(["--check", str(stale)]) == 1
    assert main(["--write", str(stale)]) == 0 and main(["--check", str(stale)]) == 0


def test_sig2() -> None:
    assert (sig2(7.829), sig2(0.0026693), sig2(64.0), sig2(1234.0), sig2(0.0)) == (
        7.8, 0.0027, 64, 1200, 0)


#: model -> differences it must touch / must not touch (checked for models that are registered)
EXPECTED = {
    "resnet18": ({"bn_eps", "bn_momentum", "bn_variance", "conv_padding", "pool_padding",
                  "kernel_layout", "data_layout", "default_init"}, {"flatten_order", "ln_eps"}),
    "resnet18_cifar": ({"conv_padding"}, {"pool_padding"}),
    "cnn_small": ({"flatten_order", "bn_eps"}, {"conv_padding"}),
    "cnn_small_gap": ({"bn_eps"}, {"flatten_order"}),
    "mlp_small": ({"ln_eps", "gelu"}, {"bn_eps", "data_layout"}),
    "lstm": ({"lstm_biases"}, {"gru_reset_after", "bn_eps", "data_layout"}),
    "gru": ({"gru_reset_after", "gru_gate_order"}, {"lstm_biases"}),
    "transformer_seed": ({"attention_layout", "ln_eps"}, {"gelu", "data_layout"}),
    "vit_ti_16": ({"attention_layout", "ln_eps", "gelu", "data_layout"}, {"flatten_order"}),
    "unet_small": ({"bn_eps"}, {"upsample_bilinear", "conv_padding"}),
    "crnn": ({"column_order", "lstm_biases", "bn_eps", "data_layout"}, {"attention_layout"}),
    "conv_transformer": ({"attention_layout", "ln_eps", "gelu", "conv_padding"},
                         {"column_order", "lstm_biases"}),
    "mobilenet_v3_small": ({"hard_sigmoid", "bn_eps", "bn_momentum", "conv_padding"},
                           {"stochastic_depth", "flatten_order"}),
    "mobilenet_v2": ({"conv_padding", "bn_eps"}, {"hard_sigmoid", "stochastic_depth"}),
    "efficientnet_b0": ({"stochastic_depth", "conv_padding", "bn_eps"}, {"hard_sigmoid"}),
    "convnext_tiny": ({"stochastic_depth", "ln_eps", "gelu"}, {"bn_eps"}),
}


@pytest.mark.parametrize("name", [n for n in EXPECTED if n in nnzoo.list_models()])
def test_applies_to_the_models_it_touches(name: str) -> None:
    must, must_not = EXPECTED[name]
    found = {d.id for d in applicable(trace(nnzoo.get_spec(name)))}
    assert must <= found, f"missing: {must - found}"
    assert not must_not & found, f"unexpected: {must_not & found}"


def test_overrides_change_what_applies() -> None:
    if "unet_small" not in nnzoo.list_models():
        pytest.skip("unet is not registered")
    found = {d.id for d in applicable(trace(nnzoo.get_spec("unet_small", upsample="bilinear")))}
    assert "upsample_bilinear" in found


@pytest.mark.parametrize("name", nnzoo.list_models())
def test_every_model_touches_the_universal_differences(name: str) -> None:
    found = {d.id for d in applicable(trace(nnzoo.get_spec(name)))}
    assert {"default_init", "kernel_layout"} <= found
