"""The parity suite: every registered model, both backends. A new variant is checked here
without editing this file.

Heavy models (over 50M parameters, measured by a free build on PyTorch's meta device, or a
compound scaling of a lighter registered model: `conftest.heavy`) move their checks under `slow`,
which `make test` runs in passes of their own on every Keras backend.
"""

from __future__ import annotations

import json

import pytest
from helpers import weights_digest

import nnzoo
from conftest import ALONE, heavy, meta_count, smallest_per_family
from nnzoo.parity import numeric_parity
from nnzoo.registry import entry

#: Above this, the numeric check (two float64 builds alive at once: 16 bytes a parameter, plus the
#: frameworks' working memory) does not fit CI's 24 GB: counts and shapes only (ViT-H/14).
HUGE = 400_000_000


def _params(slow_if_heavy: bool, numeric: bool = False) -> list:
    names = nnzoo.list_models()
    if not slow_if_heavy:
        return names
    params = []
    for name in names:
        count = meta_count(name)
        if numeric and count > HUGE:
            continue
        if count > ALONE:
            params.append(pytest.param(name, marks=[pytest.mark.slow, pytest.mark.alone]))
        elif heavy(name):
            params.append(pytest.param(name, marks=pytest.mark.slow))
        else:
            params.append(name)
    return params


def test_only_the_huge_models_skip_the_numeric_check() -> None:
    """The numeric suite leaves out exactly the models over HUGE parameters, and says which."""
    left_out = {n for n in nnzoo.list_models() if meta_count(n) > HUGE}
    assert left_out <= {n for n in nnzoo.list_models(family="vit")}, left_out


@pytest.mark.keras
@pytest.mark.parametrize("name", _params(True))
def test_counts_and_shapes(name: str) -> None:
    """Both builds' counts (and torchvision's or the seeds' published ones) and output shapes.
    A model that pools globally has the same weights and output shape at any image size, so it
    runs on its `quick()` input (EfficientNet-B7's 600x600 pass alone peaked at 9.7 GB)."""
    spec = nnzoo.get_spec(name)
    report = nnzoo.check_parity(spec.quick() if getattr(spec, "flexible_size", False) else spec)
    assert report.ok, str(report)
    assert report.counts["torch"] == report.counts["keras"]
    assert report.shapes["torch"] == report.shapes["keras"] == report.expected_shape
    for kind, count in entry(name).published.items():  # torchvision's figures, the seeds' own
        for backend, counted in report.counts.items():
            assert getattr(counted, kind) == count, f"{backend} {kind}: {getattr(counted, kind):,}"


def test_published_counts_are_recorded() -> None:
    """The seeds' models and torchvision's variants carry the counts their sources print."""
    published = {n for n in nnzoo.list_models() if entry(n).published}
    assert {"mlp_784", "cnn_small", "cnn_small_gap", "cnn_simple", "lstm", "bilstm",
            "transformer_seed", "resnet34_seed", "resnet18", "resnet152", "wide_resnet101_2",
            "vit_b_16", "vit_h_14"} <= published


@pytest.mark.parametrize("name", _params(False))
def test_spec_json_round_trip(name: str) -> None:
    spec = nnzoo.get_spec(name)
    again = nnzoo.spec_from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.to_dict() == spec.to_dict()


def _numeric_params() -> list:
    """The float64 verdict for every model up to HUGE (heavy ones under `slow`); the float32
    report for every model that is not heavy. A heavy variant is its family's light layers, wider or
    repeated: its float32 rounding is theirs, reported already, and its float32 pair of builds
    cost the slow pass some four minutes."""
    params = []
    for p in _params(True, numeric=True):
        name = p if isinstance(p, str) else p.values[0]
        marks = () if isinstance(p, str) else p.marks
        params.append(pytest.param(name, "float64", marks=marks, id=f"float64-{name}"))
        if not heavy(name):
            params.append(pytest.param(name, "float32", id=f"float32-{name}"))
    return params


@pytest.mark.keras
@pytest.mark.parametrize(("name", "dtype"), _numeric_params())
def test_numeric_parity(name: str, dtype: str) -> None:
    """Both directions after transfer: max|diff| <= 1e-5 * max(1, max|y|) computed in float64;
    in float32 within 10x the network's own float32 rounding (or 1e-5). On the spec's `quick()`
    input: the same layers, a smaller image."""
    agreements, _ = numeric_parity(nnzoo.get_spec(name).quick(), dtype=dtype)
    for a in agreements:
        assert a.ok, f"{name} {a.direction} {dtype}: max|diff| {a.max_abs:.3e} > {a.bound:.3e}"
        assert a.weights_exact, f"{name} {a.direction}: weights changed in the transfer"


def _fingerprint(name: str, backend: str, seed: int) -> str:
    """A digest of every weight (one large build alive at a time)."""
    digest = weights_digest(nnzoo.build(name, backend, seed=seed))
    nnzoo.guard.release(nnzoo.get_spec(name), copies=1)
    return digest


@pytest.mark.parametrize("name", smallest_per_family())
@pytest.mark.parametrize("backend", ["torch", pytest.param("keras", marks=pytest.mark.keras)])
def test_seeded_build_is_reproducible(name: str, backend: str) -> None:
    """Seeding is one mechanism for the whole zoo (one seeded context around a family's build),
    so one variant per family exercises every path; more variants of a family add time only."""
    first = _fingerprint(name, backend, 7)
    assert _fingerprint(name, backend, 7) == first
    assert _fingerprint(name, backend, 8) != first


@pytest.mark.keras
@pytest.mark.gpu
@pytest.mark.parametrize("name", _params(True, numeric=True))
def test_parity_on_gpu(name: str, gpu: None) -> None:
    report = nnzoo.check_parity(nnzoo.get_spec(name).quick(), device="gpu", numeric=True)
    assert report.ok, str(report)
