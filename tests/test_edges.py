"""Hard edges: tiny batches, odd shapes and dtypes, repeated builds, untrusted spec files."""

from __future__ import annotations

import gc
import json

import numpy as np
import pytest

import nnzoo
from conftest import smallest_per_family
from nnzoo.errors import InputDtypeError, SpecError, UnknownFieldError
from nnzoo.parity import compare, run
from nnzoo.specs.base import Spec

FAMILY_MODELS = smallest_per_family()
#: The edges are properties that rounding cannot hide: the float64 verdict alone decides them
#: (test_parity holds every model to the float32 report as well).
VERDICT = ("float64",)


def quick(name: str) -> Spec:
    """The model's `quick()` spec: the same layers on a smaller input (ViT: 32x32, not 224x224)."""
    return nnzoo.get_spec(name).quick()


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_batch_of_one(name: str) -> None:
    report = nnzoo.check_parity(quick(name), batch=1, numeric=True, dtypes=VERDICT)
    assert report.ok, str(report)
    assert report.shapes["torch"][0] == 1


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_single_class_head(name: str) -> None:
    report = nnzoo.check_parity(quick(name), num_classes=1, numeric=True, dtypes=VERDICT)
    assert report.ok, str(report)
    assert 1 in report.shapes["torch"]


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_num_classes_zero_gives_features_or_a_clear_refusal(name: str) -> None:
    spec = quick(name)
    try:
        features = spec.replace(num_classes=0)
    except SpecError as exc:  # a family without a feature mode says so by name
        assert "num_classes" in str(exc)
        return
    report = nnzoo.check_parity(features, numeric=True, dtypes=VERDICT)
    assert report.ok, str(report)
    assert report.shapes["torch"] == features.output_shape(2)
    assert report.counts["torch"].trainable < nnzoo.check_parity(spec).counts["torch"].trainable


FLOAT_INPUT_MODELS = [n for n in FAMILY_MODELS if nnzoo.get_spec(n).input_kind != "tokens"]


@pytest.mark.parametrize("name", FLOAT_INPUT_MODELS)
@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_other_float_dtypes_are_cast_to_the_model_dtype(name: str, dtype: str) -> None:
    """Either backend casts a float64 or bfloat16 input to float32 (Keras does it natively).
    (Token models take integer ids: `test_wrong_dtype_is_refused_clearly` covers floats there.)"""
    import ml_dtypes

    spec = nnzoo.get_spec(name)
    x = spec.example_input()
    cast = x.astype(np.float64 if dtype == "float64" else ml_dtypes.bfloat16)
    for backend in ("torch", "keras"):
        model = nnzoo.build(name, backend, seed=0)
        expected = run(model, cast.astype(np.float32))
        if dtype == "bfloat16":
            if backend == "torch":
                import torch

                y = model.eval()(torch.from_numpy(cast.astype(np.float32)).to(torch.bfloat16))
                got = y.detach().float().numpy()
            else:
                from nnzoo.layout import from_keras, to_keras

                got = from_keras(np.asarray(model(to_keras(cast, spec.input_kind))), spec.output_kind)
        else:
            got = run(model, cast)
        assert got.dtype == np.float32
        assert compare(expected, got, dtype).ok


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_wrong_dtype_is_refused_clearly(name: str) -> None:
    spec = nnzoo.get_spec(name)
    x = spec.example_input()
    wrong = x.astype(np.float32) if spec.input_kind == "tokens" else x.astype(np.int32)
    for backend in ("torch", "keras"):
        with pytest.raises(InputDtypeError, match="expects"):
            run(nnzoo.build(name, backend), wrong)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_building_many_models_does_not_grow_memory(backend: str) -> None:
    def churn(n: int) -> None:
        for i in range(n):
            model = nnzoo.build("mlp_small", backend, seed=i)
            run(model, model.spec.example_input())
            del model
        gc.collect()

    churn(10)  # warm-up: framework caches, kernels, allocator pools
    before = _rss_mb()
    churn(50)
    grown = _rss_mb() - before
    assert grown < 40, f"50 builds grew RSS by {grown:.1f} MB"


def test_untrusted_spec_dict_is_refused_naming_the_key(tmp_path) -> None:
    good = nnzoo.get_spec("cnn_small").to_dict()
    cases = [
        (good | {"num_classes": "10"}, SpecError, "num_classes"),
        (good | {"dropout": [0.5]}, SpecError, "dropout"),
        (good | {"__class__": "os.system"}, UnknownFieldError, "__class__"),
        (good | {"stages": [{"channels": 8, "kernel": "3"}]}, SpecError, "kernel"),
        (good | {"stages": "conv"}, SpecError, "stages"),
    ]
    for data, error, key in cases:
        path = tmp_path / "spec.json"
        path.write_text(json.dumps(data))
        with pytest.raises(error, match=key):
            nnzoo.spec_from_dict(json.loads(path.read_text()))
    with pytest.raises(SpecError, match="mapping"):
        nnzoo.spec_from_dict(["not", "a", "dict"])  # type: ignore[arg-type]


SEQUENCE_MODELS = [n for n in FAMILY_MODELS if "seq_len" in nnzoo.get_spec(n).field_names()]
IMAGE_MODELS = [n for n in FAMILY_MODELS if nnzoo.get_spec(n).input_kind == "image"]


def test_the_edge_lists_are_not_empty() -> None:
    assert SEQUENCE_MODELS and IMAGE_MODELS


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_sequence_of_length_one(name: str) -> None:
    report = nnzoo.check_parity(name, seq_len=1, numeric=True, dtypes=VERDICT)
    assert report.ok, str(report)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_non_square_images(name: str) -> None:
    h, w = quick(name).image_size
    report = nnzoo.check_parity(quick(name), image_size=(h, 2 * w), numeric=True, dtypes=VERDICT)
    assert report.ok, str(report)
    if report.spec.output_kind == "image":
        assert report.shapes["keras"][-2:] == (h, 2 * w)
