"""The public API and its errors: each bad input gets its own specific error, early."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

import nnzoo
from nnzoo import backends
from nnzoo.errors import (
    BackendError,
    BackendNotInstalledError,
    InputShapeError,
    SpecError,
    UnknownFieldError,
    UnknownModelError,
)


def test_import_does_not_import_frameworks() -> None:
    code = (
        "import sys, nnzoo; nnzoo.list_models(); nnzoo.get_spec('cnn_small');"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bad_inputs_are_refused_before_any_framework_import() -> None:
    code = (
        "import sys, nnzoo\n"
        "for call in (lambda: nnzoo.build('resnet343'), lambda: nnzoo.build('mlp_small', nonsense=1),"
        " lambda: nnzoo.build('mlp_small', dropout=2.0), lambda: nnzoo.build('mlp_small', 'jax')):\n"
        "    try: call()\n"
        "    except nnzoo.NnzooError: pass\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_list_models_wildcards_family_and_natural_sort() -> None:
    names = nnzoo.list_models()
    assert names == sorted(set(names), key=lambda n: names.index(n))  # no duplicates
    assert set(nnzoo.list_models("cnn_*")) == {n for n in names if n.startswith("cnn_")}
    assert set(nnzoo.list_models(family="mlp")) == {"mlp_784", "mlp_small"}
    assert nnzoo.list_models("no-such-*") == []
    with pytest.raises(SpecError, match="family"):
        nnzoo.list_models(family="rnn-ish")


def test_natural_sort_puts_18_before_101() -> None:
    from nnzoo.registry import _natural_key

    assert sorted(["resnet101", "resnet18", "resnet50"], key=_natural_key) == [
        "resnet18", "resnet50", "resnet101"]


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model 'cnn_smal'.*did you mean 'cnn_small'"):
        nnzoo.get_spec("cnn_smal")


def test_unknown_override_lists_valid_fields() -> None:
    pattern = r"no field 'num_clases'.*did you mean 'num_classes'.*valid fields:"
    with pytest.raises(UnknownFieldError, match=pattern):
        nnzoo.get_spec("mlp_small", num_clases=3)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"dropout": 1.5}, "dropout"),
        ({"hidden_sizes": (64, 0)}, "hidden_sizes"),
        ({"activation": "swish"}, "activation"),
        ({"norm": "instance"}, "norm"),
        ({"bn_momentum": 0.99 + 0.02}, "bn_momentum"),
        ({"input_size": "32"}, "input_size"),
        ({"bias": 1}, "bias"),
    ],
)
def test_invalid_values_name_field_value_and_allowed(overrides: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        nnzoo.get_spec("mlp_small", **overrides)
    assert info.value.field == field
    assert field in str(info.value) and "invalid" in str(info.value)


def test_cnn_validation_names_the_problem() -> None:
    with pytest.raises(SpecError, match="image_size"):
        nnzoo.get_spec("cnn_small", image_size=4)
    with pytest.raises(SpecError, match="gn_groups"):
        nnzoo.get_spec("cnn_separable", gn_groups=5)
    with pytest.raises(SpecError, match="stages"):
        nnzoo.get_spec("cnn_small", stages=())


def test_unknown_backend() -> None:
    with pytest.raises(BackendError, match=r"unknown backend 'jax'; choose one of: torch, keras"):
        nnzoo.build("mlp_small", backend="jax")


def test_missing_backend_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "keras" else real(name, *a))
    with pytest.raises(BackendNotInstalledError, match=r'pip install "nnzoo\[keras\]"'):
        nnzoo.build("mlp_small", backend="keras")


def test_available_backends() -> None:
    assert nnzoo.available_backends() == ["torch", "keras"]


def test_spec_dict_round_trip_and_refusals() -> None:
    spec = nnzoo.get_spec("cnn_small", num_classes=3)
    assert nnzoo.spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    bad = spec.to_dict() | {"extra_key": 1}
    with pytest.raises(UnknownFieldError, match="extra_key"):
        nnzoo.spec_from_dict(bad)
    with pytest.raises(SpecError, match="family"):
        nnzoo.spec_from_dict({"family": "nope"})
    nested = spec.to_dict()
    nested["stages"][0]["chanels"] = 3
    with pytest.raises(UnknownFieldError, match="chanels"):
        nnzoo.spec_from_dict(nested)


def test_build_accepts_name_spec_and_dict_with_overrides() -> None:
    import keras
    import torch

    spec = nnzoo.get_spec("mlp_small")
    for source in ("mlp_small", spec, spec.to_dict()):
        t = nnzoo.build(source, "torch", num_classes=4)
        k = nnzoo.build(source, "keras", num_classes=4)
        assert isinstance(t, torch.nn.Module) and isinstance(k, keras.Model)
        assert t.spec == k.spec == spec.replace(num_classes=4)


def test_count_params_definition() -> None:
    """BatchNorm's running stats are state; its batch counter is not counted at all."""
    t, k = nnzoo.build("mlp_784", "torch"), nnzoo.build("mlp_784", "keras")
    ct, ck = nnzoo.count_params(t), nnzoo.count_params(k)
    assert ct == ck
    assert ct.trainable == 569_226  # the seed's own count
    assert ct.non_trainable == 2 * (512 + 256 + 128)
    assert ct.total == ct.trainable + ct.non_trainable
    with pytest.raises(TypeError, match="expected a torch.nn.Module or a keras.Model"):
        nnzoo.count_params(object())


def test_num_classes_zero_returns_features() -> None:
    report = nnzoo.check_parity("cnn_small_gap", num_classes=0)
    assert report.ok and report.shapes["torch"] == (2, 256)


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_wrong_input_shape_names_the_expected_shape(backend: str) -> None:
    import numpy as np

    model = nnzoo.build("cnn_small", backend)
    bad = np.zeros((1, 3, 31, 32), np.float32) if backend == "torch" else np.zeros((1, 31, 32, 3), np.float32)
    if backend == "torch":
        import torch

        bad = torch.from_numpy(bad)
    with pytest.raises(InputShapeError, match=r"expects input of shape \(batch, .*32.*\); got"):
        model(bad)


def test_check_parity_refuses_unknown_device() -> None:
    with pytest.raises(nnzoo.errors.DeviceError, match="'tpu'"):
        nnzoo.check_parity("mlp_small", device="tpu")


def test_check_parity_makes_the_numeric_comparisons_asked_for() -> None:
    both = nnzoo.check_parity("mlp_small", numeric=True)
    assert [a.dtype for a in both.agreement] == ["float64", "float64", "float32", "float32"]
    verdict = nnzoo.check_parity("mlp_small", numeric=True, dtypes=("float64",))
    assert [a.dtype for a in verdict.agreement] == ["float64", "float64"] and verdict.ok
    single = nnzoo.check_parity("mlp_small", numeric=True, dtypes=("float32",))
    assert [a.dtype for a in single.agreement] == ["float32", "float32"] and single.ok
    with pytest.raises(nnzoo.errors.SpecError, match="dtypes"):
        nnzoo.check_parity("mlp_small", numeric=True, dtypes=("float16",))


def test_gpu_status_is_reported_with_a_reason() -> None:
    from nnzoo.runtime import gpu_status

    usable, reason = gpu_status()
    assert usable or reason


def test_gpu_runs_state_ieee_float32_in_every_framework() -> None:
    """A GPU run sets float32 to IEEE float32 in PyTorch, JAX and TensorFlow (their GPU defaults
    are TF32 in different places) and gives each switch back as it was; a CPU run touches none.
    The switches exist in the CPU builds too, so this runs everywhere; test_parity_on_gpu checks
    the numbers on a GPU."""
    import jax
    import tensorflow as tf
    import torch

    from nnzoo.runtime import ieee_float32

    knobs = [torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn]

    def switches() -> tuple:
        return ([k.fp32_precision for k in knobs],
                tf.config.experimental.tensor_float_32_execution_enabled(),
                jax.config.jax_default_matmul_precision)

    before = switches()
    with ieee_float32("cpu"):
        assert switches() == before
    with ieee_float32("gpu"):
        assert switches() == (["ieee"] * 3, False, "float32")
    assert switches() == before


def test_backend_of_refuses_foreign_objects() -> None:
    with pytest.raises(TypeError):
        backends.backend_of(3)


@pytest.mark.parametrize(("name", "family"), [("mlp", "mlp"), ("cnn", "cnn"), ("vit", "vit"),
                                              ("mpl", "mlp"), ("resnt", "resnet")])
def test_a_family_name_or_a_near_miss_suggests_the_family_models(name: str, family: str) -> None:
    variants = nnzoo.list_models(family=family)
    for call in (nnzoo.build, nnzoo.get_spec):  # a family name is never silently a variant
        with pytest.raises(UnknownModelError) as info:
            call(name)
        assert info.value.suggestions == variants and info.value.family == family
        assert f"choose one of {', '.join(variants)}" in str(info.value)
    exact = f"{name!r} is a family, not a model" in str(info.value)
    assert exact == (name == family), str(info.value)
    assert nnzoo.get_spec("unet").family == "unet"  # a model named like its family is the model
