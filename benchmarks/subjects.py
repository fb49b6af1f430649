"""What is measured: nnzoo builds, and the reference implementations of the same networks.

A subject is named by its implementation and model: ("nnzoo", "resnet50") is `nnzoo.build`;
("torchvision", "resnet50") is torchvision's class built with the sizes of nnzoo's resnet50
spec, and so on. References are derived from the spec, not from a second table of names, so
every ResNet and ViT variant in the zoo is compared against the same classes at the same sizes;
a spec a reference cannot express (a CIFAR stem, grouped convolutions for keras-hub, a ViT
without a class token) simply has no such reference.

References and their availability here:
- PyTorch: torchvision (ResNet, ViT; ConvNeXt, MobileNet, EfficientNet by name), timm (ResNet,
  ViT; ConvNeXt-T, MobileNetV2/V3, EfficientNet-B0 by name).
- Keras: keras.applications (ResNet50/101/152 v1 only: the stride sits in the first 1x1
  convolution, a few % fewer FLOPs than v1.5; no ViT; ConvNeXt-T, MobileNetV2/V3 and
  EfficientNet-B0 by name, EfficientNet with its input normalization), keras-hub (ResNet, ViT
  backbones, given the same pooling + dense head as nnzoo's classifiers).
A reference "by name" is used only for the registered spec it names (the number of classes
aside); its trainable count equals torchvision's (measured: timm 1.0.31, Keras 3.15).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import nnzoo
from nnzoo.specs.base import Spec

TORCH_REFS = ("torchvision", "timm")
KERAS_REFS = ("keras.applications", "keras_hub")
PACKAGES = {"torchvision": "torchvision", "timm": "timm", "keras.applications": "keras",
            "keras_hub": "keras_hub"}


def backend_of_impl(impl: str) -> str:
    return "torch" if impl in TORCH_REFS else "keras"


def installed(impl: str) -> bool:
    return importlib.util.find_spec(PACKAGES[impl]) is not None


def _torchvision() -> Any:
    from nnzoo.references import torchvision_models

    return torchvision_models()


def _plain_resnet(spec: Spec) -> bool:
    return (spec.stem == "imagenet" and spec.stem_width == 64 and len(spec.layers) == 4
            and tuple(spec.widths) == (64, 128, 256, 512) and spec.in_channels == 3
            and not spec.conv_bias and spec.num_classes > 0)


def _plain_vit(spec: Spec) -> bool:
    return spec.class_token and spec.image_size[0] == spec.image_size[1] and spec.num_classes > 0


# ---- PyTorch references --------------------------------------------------------------------------
def _torchvision_resnet(spec: Spec) -> Any:
    resnet = _torchvision().resnet
    block = resnet.Bottleneck if spec.block == "bottleneck" else resnet.BasicBlock
    return resnet.ResNet(block, list(spec.layers), num_classes=spec.num_classes,
                         groups=spec.groups, width_per_group=spec.base_width)


def _torchvision_vit(spec: Spec) -> Any:
    vt = _torchvision().vision_transformer
    return vt.VisionTransformer(image_size=spec.image_size[0], patch_size=spec.patch_size,
                                num_layers=spec.depth, num_heads=spec.num_heads,
                                hidden_dim=spec.embed_dim, mlp_dim=spec.mlp_dim,
                                num_classes=spec.num_classes)


def _timm_resnet(spec: Spec) -> Any:
    _torchvision()  # timm imports torchvision when it is installed
    from timm.models import resnet

    block = resnet.Bottleneck if spec.block == "bottleneck" else resnet.BasicBlock
    return resnet.ResNet(block=block, layers=list(spec.layers), num_classes=spec.num_classes,
                         cardinality=spec.groups, base_width=spec.base_width)


def _timm_vit(spec: Spec) -> Any:
    _torchvision()
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=spec.image_size, patch_size=spec.patch_size,
                             embed_dim=spec.embed_dim, depth=spec.depth, num_heads=spec.num_heads,
                             mlp_ratio=spec.mlp_dim / spec.embed_dim,
                             num_classes=spec.num_classes)


# ---- Keras references ----------------------------------------------------------------------------
def _keras_applications_resnet(spec: Spec) -> Any:
    import keras

    apps = {(3, 4, 6, 3): keras.applications.ResNet50, (3, 4, 23, 3): keras.applications.ResNet101,
            (3, 8, 36, 3): keras.applications.ResNet152}
    return apps[tuple(spec.layers)](weights=None, classes=spec.num_classes,
                                    input_shape=(*spec.image_size, 3))


def _with_head(backbone: Any, spec: Spec, pool: str) -> Any:
    """A classifier over a keras-hub backbone: the head nnzoo's builds have (pool, dense)."""
    import keras

    x = backbone.output
    x = keras.layers.GlobalAveragePooling2D()(x) if pool == "avg" else x[:, 0]
    return keras.Model(backbone.input, keras.layers.Dense(spec.num_classes)(x))


def _keras_hub_resnet(spec: Spec) -> Any:
    from keras_hub.models import ResNetBackbone

    backbone = ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7],
        stackwise_num_filters=list(spec.widths), stackwise_num_blocks=list(spec.layers),
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="bottleneck_block" if spec.block == "bottleneck" else "basic_block",
        image_shape=(*spec.image_size, 3))
    return _with_head(backbone, spec, "avg")


def _keras_hub_vit(spec: Spec) -> Any:
    from keras_hub.models import ViTBackbone

    backbone = ViTBackbone(image_shape=(*spec.image_size, spec.in_channels),
                           patch_size=(spec.patch_size, spec.patch_size), num_layers=spec.depth,
                           num_heads=spec.num_heads, hidden_dim=spec.embed_dim,
                           mlp_dim=spec.mlp_dim, layer_norm_epsilon=spec.ln_eps)
    return _with_head(backbone, spec, "token")


# ---- references by name: ConvNeXt, MobileNet, EfficientNet ---------------------------------------
#: nnzoo name -> the reference's own name, where it builds the same network.
NAMED: dict[str, dict[str, str]] = {
    "torchvision": {n: n for n in ("convnext_tiny", "convnext_small", "convnext_base",
                                   "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
                                   *(f"efficientnet_b{i}" for i in range(8)))},
    "timm": {"convnext_tiny": "convnext_tiny", "mobilenet_v2": "mobilenetv2_100",
             "mobilenet_v3_large": "mobilenetv3_large_100",
             "mobilenet_v3_small": "mobilenetv3_small_100", "efficientnet_b0": "efficientnet_b0"},
    "keras.applications": {"convnext_tiny": "ConvNeXtTiny", "mobilenet_v2": "MobileNetV2",
                           "mobilenet_v3_large": "MobileNetV3Large",
                           "mobilenet_v3_small": "MobileNetV3Small",
                           "efficientnet_b0": "EfficientNetB0"},
}


def _registered_name(spec: Spec) -> str | None:
    """The registered model whose spec this is, the number of classes aside."""
    for name in nnzoo.list_models(family=spec.family):
        if nnzoo.get_spec(name, num_classes=spec.num_classes) == spec:
            return name
    return None


def _named(impl: str) -> Callable[[Spec], bool]:
    return lambda spec: spec.num_classes > 0 and _registered_name(spec) in NAMED[impl]


def _torchvision_named(spec: Spec) -> Any:
    name = NAMED["torchvision"][_registered_name(spec)]
    return getattr(_torchvision(), name)(num_classes=spec.num_classes)


def _timm_named(spec: Spec) -> Any:
    _torchvision()
    import timm

    return timm.create_model(NAMED["timm"][_registered_name(spec)], num_classes=spec.num_classes)


def _keras_applications_named(spec: Spec) -> Any:
    import keras

    app = NAMED["keras.applications"][_registered_name(spec)]
    # Logits, as nnzoo's classifiers return; no preprocessing layers where they are optional.
    extra = {"include_preprocessing": False} if "V3" in app or "ConvNeXt" in app else {}
    return getattr(keras.applications, app)(weights=None, classes=spec.num_classes,
                                            input_shape=(*spec.image_size, 3),
                                            classifier_activation=None, **extra)


Builder = Callable[[Spec], Any]

#: (implementation, family) -> (can it express this spec?, build it)
REFERENCES: dict[tuple[str, str], tuple[Callable[[Spec], bool], Builder]] = {
    ("torchvision", "resnet"): (_plain_resnet, _torchvision_resnet),
    ("torchvision", "vit"): (_plain_vit, _torchvision_vit),
    ("timm", "resnet"): (_plain_resnet, _timm_resnet),
    ("timm", "vit"): (_plain_vit, _timm_vit),
    ("keras.applications", "resnet"): (
        lambda s: _plain_resnet(s) and s.block == "bottleneck" and s.groups == 1
        and s.base_width == 64 and tuple(s.layers) in {(3, 4, 6, 3), (3, 4, 23, 3), (3, 8, 36, 3)},
        _keras_applications_resnet),
    ("keras_hub", "resnet"): (lambda s: _plain_resnet(s) and s.groups == 1 and s.base_width == 64,
                              _keras_hub_resnet),
    ("keras_hub", "vit"): (_plain_vit, _keras_hub_vit),
    **{(impl, family): (_named(impl), builder)
       for impl, builder in (("torchvision", _torchvision_named), ("timm", _timm_named),
                             ("keras.applications", _keras_applications_named))
       for family in ("convnext", "mobilenet", "efficientnet")},
}


def references(name: str) -> dict[str, str]:
    """impl -> "ok" or why it is not measured, for the references of model `name`."""
    spec = nnzoo.get_spec(name)
    found = {}
    for impl in (*TORCH_REFS, *KERAS_REFS):
        entry = REFERENCES.get((impl, spec.family))
        if entry is None:
            continue
        if not entry[0](spec):
            found[impl] = f"{impl} cannot express this {spec.family} spec"
        elif not installed(impl):
            found[impl] = (f"{impl} is not installed (`make bench` installs it: "
                           "pip install -c constraints.txt -e '.[bench]')")
        else:
            found[impl] = "ok"
    return found


def preload(impl: str, name: str, backend: str) -> None:
    """Import the code that builds the subject, so that a build's time and memory are its own."""
    import importlib

    family = nnzoo.get_spec(name).family
    if impl == "nnzoo":
        importlib.import_module(f"nnzoo.{backend}_impl.{family}")
    elif impl == "torchvision":
        _torchvision()
    elif impl == "timm":
        _torchvision()
        importlib.import_module("timm.models")
    elif impl == "keras_hub":
        importlib.import_module("keras_hub.models")
    else:
        importlib.import_module("keras.applications")


def build(impl: str, name: str, backend: str) -> Any:
    """Build the subject; seeded so that every run measures the same weights."""
    if impl == "nnzoo":
        return nnzoo.build(name, backend, seed=0)
    spec = nnzoo.get_spec(name)
    return REFERENCES[(impl, spec.family)][1](spec)
