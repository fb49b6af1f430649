"""ResNet: torchvision's counts and checkpoints, both backends, and the spec's refusals.

The parity suite (tests/test_parity.py) already compares the two builds of every variant; this
file pins them to the outside reference (torchvision) and to the seed's model.
"""

from __future__ import annotations

import types

import pytest

import nnzoo
from nnzoo.errors import SpecError
from nnzoo.links import torch_path
from nnzoo.registry import entry
from nnzoo.runtime import run

#: torchvision's published trainable counts at 1000 classes.
TORCHVISION = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
}
#: Over 50M parameters: building torchvision's twin and running it costs seconds each.
HEAVY = {"resnet152", "resnext101_32x8d", "wide_resnet50_2", "wide_resnet101_2"}


def _standard(slow_if_heavy: bool) -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if slow_if_heavy and n in HEAVY else n
            for n in TORCHVISION]


# Both backends' counts against torchvision's figures (and the seed's) are checked once, in the
# parity suite, from the counts recorded in the variant table.
def test_seed_resnet_is_resnet34_through_overrides() -> None:
    """seeds/000's ResNetPyTorch: ResNet-34 layout, biased convolutions, 10 classes."""
    spec = nnzoo.get_spec("resnet34", conv_bias=True, num_classes=10)
    assert spec == nnzoo.get_spec("resnet34_seed")
    assert entry("resnet34_seed").published == {"trainable": 21_298_314}


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [("resnet18", 224, (2, 1000)), ("resnet18_cifar", 32, (2, 10)),
     ("resnet50", 32, (2, 2048))],  # num_classes=0 below: pooled features
)
@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_output_shapes(name: str, size: int, expected: tuple, backend: str) -> None:
    overrides = {"num_classes": 0} if name == "resnet50" else {}
    spec = nnzoo.get_spec(name, image_size=size, **overrides)
    model = nnzoo.build(spec, backend)
    y = run(model, spec.example_input(2))
    assert y.shape == expected == spec.output_shape(2)


def _perturbed_state(tv_model: object, seed: int) -> dict:
    """torchvision's state with random batch-norm statistics and affine terms (not 0/1)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    state = tv_model.state_dict()
    for key, value in state.items():
        if key.endswith(("running_mean", "bn1.bias", "bn2.bias", "bn3.bias", ".1.bias")):
            state[key] = torch.randn(value.shape, generator=g) * 0.1
        elif key.endswith(("running_var", "bn1.weight", "bn2.weight", "bn3.weight", ".1.weight")):
            state[key] = torch.rand(value.shape, generator=g) + 0.5
    return state


@pytest.mark.parametrize("name", _standard(True))
def test_torchvision_state_dict_loads_strictly(name: str, tv_models: types.ModuleType) -> None:
    import torch

    reference = getattr(tv_models, name)().eval()
    reference.load_state_dict(_perturbed_state(reference, 0))
    model = nnzoo.build(name, "torch").eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    assert [n for n, _ in model.named_modules()] == [n for n, _ in reference.named_modules()]
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = reference(x), model(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.keras
def test_tiny_resnext_keras_matches_torch() -> None:
    """Grouped 3x3 convolutions survive the transfer (Keras HWIO with I = in // groups)."""
    from nnzoo.parity import numeric_parity

    spec = nnzoo.get_spec("resnext50_32x4d", layers=(1, 1), widths=(16, 32), groups=4,
                          base_width=32, stem_width=16, image_size=24, num_classes=5)
    agreements, rows = numeric_parity(spec, layers=True)
    assert all(a.ok for a in agreements), [(a.direction, a.max_abs) for a in agreements]
    assert rows and all(r.ok for r in rows), [r.name for r in rows if not r.ok]


def test_keras_names_mirror_torch_and_padding_is_explicit() -> None:
    spec = nnzoo.get_spec("resnet50", layers=(1, 2), widths=(8, 16), stem_width=8, image_size=32)
    torch_model, keras_model = nnzoo.build(spec, "torch"), nnzoo.build(spec, "keras")
    weighted = {n for n, m in torch_model.named_modules() if list(m.parameters(recurse=False))}
    assert weighted == {torch_path(layer.name) for layer in keras_model.layers if layer.weights}
    assert "layer2.0.downsample.0" in weighted
    for layer in keras_model.layers:
        strides = getattr(layer, "strides", (1, 1))
        assert not (getattr(layer, "padding", "") == "same" and max(strides) > 1), layer.name


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"layers": ()}, "layers"),
        ({"layers": (2, 0, 2, 2)}, "layers"),
        ({"widths": (64, 128, 0, 512)}, "widths"),
        ({"widths": (64, 128, 256)}, "widths"),
        ({"block": "preact"}, "block"),
        ({"groups": 0}, "groups"),
        ({"groups": 2}, "groups"),  # basic blocks are not grouped
        ({"base_width": 32}, "base_width"),  # nor have an inner width
        ({"num_classes": -1}, "num_classes"),
        ({"bn_momentum": 1.0}, "bn_momentum"),
        ({"bn_eps": 0.0}, "bn_eps"),
        ({"image_size": (0, 32)}, "image_size"),
        ({"stem": "tiny"}, "stem"),
    ],
)
def test_spec_refuses(overrides: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        nnzoo.get_spec("resnet18", **overrides)
    assert info.value.field == field
    assert field in str(info.value)


def test_grouped_width_must_split_evenly() -> None:
    """The per-group width is width * base_width / 64: a fraction is refused, not truncated."""
    with pytest.raises(SpecError, match="base_width") as info:
        nnzoo.get_spec("resnext50_32x4d", widths=(64, 128, 256, 500))
    assert info.value.field == "base_width"
    assert nnzoo.get_spec("resnext50_32x4d", groups=8).inner_width(64) == 32


def test_any_image_size_is_accepted() -> None:
    spec = nnzoo.get_spec("resnet18")
    spec.check_input_shape((1, 3, 40, 56), channels_last=False)
    spec.check_input_shape((1, 17, 9, 3), channels_last=True)
    with pytest.raises(nnzoo.InputShapeError):
        spec.check_input_shape((1, 1, 40, 56), channels_last=False)
