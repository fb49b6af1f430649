"""The parity suite: every registered model, both backends. A new variant is checked here
without editing this file.

Heavy models (over 50M parameters, measured by a free build on PyTorch's meta device) keep
their count and shape checks in the default run and move their numeric checks under `slow`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import nnzoo
from conftest import meta_count
from nnzoo.parity import ATOL, numeric_parity

HEAVY = 50_000_000


def _params(slow_if_heavy: bool) -> list:
    names = nnzoo.list_models()
    if not slow_if_heavy:
        return names
    return [pytest.param(n, marks=pytest.mark.slow) if meta_count(n) > HEAVY else n for n in names]


@pytest.mark.parametrize("name", _params(False))
def test_counts_and_shapes(name: str) -> None:
    report = nnzoo.check_parity(name)
    assert report.ok, str(report)
    assert report.counts["torch"] == report.counts["keras"]
    assert report.shapes["torch"] == report.shapes["keras"] == report.expected_shape


@pytest.mark.parametrize("name", _params(False))
def test_spec_json_round_trip(name: str) -> None:
    spec = nnzoo.get_spec(name)
    again = nnzoo.spec_from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.to_dict() == spec.to_dict()


@pytest.mark.parametrize("name", _params(True))
def test_numeric_parity(name: str) -> None:
    """Both directions after transfer, within max|diff| <= 1e-5 * max(1, max|y|)."""
    agreements, _ = numeric_parity(nnzoo.get_spec(name))
    for a in agreements:
        assert a.ok, f"{name} {a.direction}: max|diff| {a.max_abs:.3e} > {ATOL} x {a.scale:.3g}"


@pytest.mark.parametrize("name", _params(True))
@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_seeded_build_is_reproducible(name: str, backend: str) -> None:
    from nnzoo.convert import state_dict

    a = state_dict(nnzoo.build(name, backend, seed=7))
    b = state_dict(nnzoo.build(name, backend, seed=7))
    c = state_dict(nnzoo.build(name, backend, seed=8))
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a if a[k].size > 1)


@pytest.mark.gpu
@pytest.mark.parametrize("name", _params(True))
def test_parity_on_gpu(name: str, gpu: None) -> None:
    report = nnzoo.check_parity(name, device="gpu", numeric=True)
    assert report.ok, str(report)
