"""Hypothesis strategies: small random *valid* specs, one strategy per family.

Each draws only from the values its family documents, at sizes a 2-core CI runs in seconds.
A family added to the zoo gets a strategy here; `test_properties.py` checks that none is missing.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from nnzoo.specs.cnn import CNNSpec, ConvStage
from nnzoo.specs.convnext import ConvNeXtSpec
from nnzoo.specs.efficientnet import EfficientNetSpec, MBStage
from nnzoo.specs.hybrid import HybridSpec
from nnzoo.specs.mlp import MLPSpec
from nnzoo.specs.mobilenet import MBBlock, MobileNetSpec
from nnzoo.specs.recurrent import RecurrentSpec
from nnzoo.specs.resnet import ResNetSpec
from nnzoo.specs.transformer import TransformerSpec
from nnzoo.specs.unet import UNetSpec
from nnzoo.specs.vit import ViTSpec

ACTIVATIONS = st.sampled_from(["relu", "gelu", "gelu_tanh", "silu", "tanh"])
EPS = st.sampled_from([1e-5, 1e-3, 1e-6])
MOMENTUM = st.sampled_from([0.1, 0.01, 0.3])


@st.composite
def mlp(draw: Any) -> MLPSpec:
    return MLPSpec(
        input_size=draw(st.integers(1, 12)),
        hidden_sizes=tuple(draw(st.lists(st.integers(1, 16), min_size=1, max_size=3))),
        activation=draw(ACTIVATIONS),
        norm=draw(st.sampled_from(["batch", "layer", "none"])),
        bn_eps=draw(EPS), bn_momentum=draw(MOMENTUM), ln_eps=draw(EPS),
        dropout=draw(st.sampled_from([0.0, 0.2])),
        bias=draw(st.booleans()),
        num_classes=draw(st.integers(0, 5)),
    )


@st.composite
def cnn(draw: Any) -> CNNSpec:
    norm = draw(st.sampled_from(["batch", "group", "none"]))
    groups = draw(st.sampled_from([1, 2]))
    stages = []
    for _ in range(draw(st.integers(1, 3))):
        kernel = draw(st.sampled_from([1, 2, 3, 5]))
        pool_size = draw(st.sampled_from([2, 3]))
        stages.append(ConvStage(
            channels=groups * draw(st.integers(1, 4)),
            kernel=kernel, stride=draw(st.sampled_from([1, 2])),
            padding=draw(st.integers(0, kernel - 1)),
            separable=draw(st.booleans()),
            pool=draw(st.sampled_from(["max", "avg", "none"])),
            pool_size=pool_size, pool_stride=draw(st.sampled_from([1, 2])),
            pool_padding=draw(st.integers(0, pool_size // 2)),
        ))
    return CNNSpec(
        in_channels=draw(st.integers(1, 3)),
        image_size=(draw(st.integers(24, 33)), draw(st.integers(24, 33))),
        stages=tuple(stages), norm=norm, gn_groups=groups,
        order=draw(st.sampled_from(["conv-norm-act", "conv-act-norm"])),
        activation=draw(ACTIVATIONS), conv_bias=draw(st.booleans()),
        bn_eps=draw(EPS), bn_momentum=draw(MOMENTUM), gn_eps=draw(EPS),
        global_pool=draw(st.sampled_from(["flatten", "avg", "max"])),
        hidden_sizes=tuple(draw(st.lists(st.integers(1, 8), max_size=2))),
        num_classes=draw(st.integers(0, 4)),
    )


@st.composite
def resnet(draw: Any) -> ResNetSpec:
    block = draw(st.sampled_from(["basic", "bottleneck"]))
    stages = draw(st.integers(1, 3))
    groups, base_width = 1, 64
    if block == "bottleneck":
        groups, base_width = draw(st.sampled_from([(1, 64), (2, 32), (4, 16)]))
    size = draw(st.integers(8, 40))
    return ResNetSpec(
        block=block, layers=tuple(draw(st.integers(1, 2)) for _ in range(stages)),
        widths=tuple(draw(st.sampled_from([4, 8, 12])) for _ in range(stages)),
        groups=groups, base_width=base_width, stem=draw(st.sampled_from(["imagenet", "cifar"])),
        stem_width=draw(st.sampled_from([4, 8])), in_channels=draw(st.integers(1, 3)),
        image_size=(size, draw(st.integers(8, 40))), num_classes=draw(st.integers(0, 4)),
        conv_bias=draw(st.booleans()), bn_eps=draw(EPS), bn_momentum=draw(MOMENTUM),
    )


@st.composite
def vit(draw: Any) -> ViTSpec:
    patch = draw(st.sampled_from([4, 8]))
    heads = draw(st.integers(1, 3))
    return ViTSpec(
        image_size=(patch * draw(st.integers(1, 3)), patch * draw(st.integers(1, 3))),
        patch_size=patch, in_channels=draw(st.integers(1, 3)),
        embed_dim=heads * draw(st.sampled_from([2, 4])), depth=draw(st.integers(1, 2)),
        num_heads=heads, mlp_dim=draw(st.integers(4, 16)),
        ln_eps=draw(EPS), activation=draw(ACTIVATIONS), class_token=draw(st.booleans()),
        num_classes=draw(st.integers(0, 4)),
    )


@st.composite
def unet(draw: Any) -> UNetSpec:
    depth = draw(st.integers(1, 3))
    step = 2**depth
    return UNetSpec(
        in_channels=draw(st.integers(1, 3)), num_classes=draw(st.integers(1, 3)),
        base_width=draw(st.sampled_from([2, 4])), depth=depth,
        norm=draw(st.sampled_from(["batch", "none"])), bn_eps=draw(EPS), bn_momentum=draw(MOMENTUM),
        conv_bias=draw(st.sampled_from([None, True, False])), activation=draw(ACTIVATIONS),
        upsample=draw(st.sampled_from(["transpose", "bilinear"])),
        image_size=(step * draw(st.integers(1, 3)), step * draw(st.integers(1, 3))),
    )


@st.composite
def recurrent(draw: Any) -> RecurrentSpec:
    return RecurrentSpec(
        cell=draw(st.sampled_from(["lstm", "gru"])),
        input=draw(st.sampled_from(["features", "tokens"])),
        input_size=draw(st.integers(1, 6)), vocab_size=draw(st.integers(3, 20)),
        embed_dim=draw(st.integers(1, 6)), padding_idx=draw(st.sampled_from([0, None])),
        hidden_size=draw(st.integers(1, 8)), num_layers=draw(st.integers(1, 2)),
        bidirectional=draw(st.booleans()), summary=draw(st.sampled_from(["final", "last", "mean"])),
        hidden_sizes=tuple(draw(st.lists(st.integers(1, 6), max_size=1))),
        activation=draw(ACTIVATIONS), num_classes=draw(st.integers(0, 4)),
        seq_len=draw(st.integers(1, 6)),
    )


@st.composite
def transformer(draw: Any) -> TransformerSpec:
    heads = draw(st.integers(1, 2))
    return TransformerSpec(
        vocab_size=draw(st.integers(3, 20)), max_len=16,
        padding_idx=draw(st.sampled_from([0, None])),
        embed_dim=heads * draw(st.sampled_from([2, 4])), depth=draw(st.integers(1, 2)),
        num_heads=heads, mlp_dim=draw(st.integers(2, 12)),
        activation=draw(st.sampled_from(["relu", "gelu"])),
        norm_first=draw(st.booleans()), final_norm=draw(st.booleans()), ln_eps=draw(EPS),
        positional=draw(st.sampled_from(["learned", "sinusoidal", "none"])),
        pooling=draw(st.sampled_from(["mean", "cls"])), num_classes=draw(st.integers(0, 4)),
        seq_len=draw(st.integers(1, 8)),
    )


@st.composite
def convnext(draw: Any) -> ConvNeXtSpec:
    stages = draw(st.integers(1, 3))
    least = 4 * 2 ** (stages - 1)
    return ConvNeXtSpec(
        layers=tuple(draw(st.integers(1, 2)) for _ in range(stages)),
        widths=tuple(draw(st.sampled_from([2, 4, 8])) for _ in range(stages)),
        in_channels=draw(st.integers(1, 3)),
        image_size=(draw(st.integers(least, least + 12)), draw(st.integers(least, least + 12))),
        layer_scale=draw(st.sampled_from([1e-6, 0.5, 1.0])),  # large enough to see the blocks
        stochastic_depth=draw(st.sampled_from([0.0, 0.2])), ln_eps=draw(EPS),
        num_classes=draw(st.integers(0, 4)),
    )


@st.composite
def hybrid(draw: Any) -> HybridSpec:
    """A conv front end (one or two small stages) and an LSTM/GRU stack, attention blocks or
    both, read per step or pooled."""
    # at least 2x2 steps' worth of map from an 8x8 image: the first stage may pool, the second
    # may stride
    stages = (ConvStage(channels=draw(st.integers(1, 4)), pool=draw(st.sampled_from(["max", "none"]))),
              ConvStage(channels=draw(st.integers(1, 4)), stride=draw(st.sampled_from([1, 2])),
                        pool="none"))[:draw(st.integers(1, 2))]
    rnn = draw(st.sampled_from(["lstm", "gru", "none"]))
    attention = draw(st.integers(1 if rnn == "none" else 0, 1))
    heads = draw(st.sampled_from([1, 2]))
    return HybridSpec(
        in_channels=draw(st.integers(1, 3)),
        image_size=(draw(st.integers(8, 14)), draw(st.integers(8, 14))),
        stages=stages, norm=draw(st.sampled_from(["batch", "none"])),
        activation=draw(ACTIVATIONS), bn_eps=draw(EPS), bn_momentum=draw(MOMENTUM),
        sequence=draw(st.sampled_from(["columns", "patches"])),
        # an even width when attention reads the projection (heads 1 or 2 divide it)
        proj_dim=draw(st.sampled_from([4, 6]) if rnn == "none" else st.sampled_from([0, 3])),
        rnn=rnn, hidden_size=draw(st.sampled_from([2, 4])), num_layers=draw(st.integers(1, 2)),
        bidirectional=draw(st.booleans()),
        attention_layers=attention, num_heads=heads, mlp_dim=draw(st.integers(2, 8)),
        mlp_activation=draw(ACTIVATIONS), ln_eps=draw(EPS),
        positions=bool(attention) and draw(st.booleans()),
        output=draw(st.sampled_from(["steps", "pooled"])),
        num_classes=draw(st.integers(0, 4)),
    )


@st.composite
def mobilenet(draw: Any) -> MobileNetSpec:
    """One to three blocks of either layout (V2 without squeeze-excitation), with or without an
    expansion layer, residual or strided, and V2's or V3's head."""
    version = draw(st.sampled_from(["v2", "v3"]))
    blocks = tuple(MBBlock(
        channels=draw(st.sampled_from([4, 8])), expanded=draw(st.sampled_from([4, 8, 12])),
        kernel=draw(st.sampled_from([1, 3, 5])), stride=draw(st.sampled_from([1, 2])),
        se=version == "v3" and draw(st.booleans()),
        activation=draw(st.sampled_from(["relu6", "relu", "hardswish"])),
    ) for _ in range(draw(st.integers(1, 3))))
    return MobileNetSpec(
        version=version, blocks=blocks, stem_width=draw(st.sampled_from([4, 8])),
        stem_activation=draw(st.sampled_from(["relu6", "hardswish"])),
        last_width=draw(st.integers(2, 12)), last_activation=draw(st.sampled_from(["relu6", "hardswish"])),
        hidden_width=draw(st.sampled_from([0, 6])), se_divisor=draw(st.sampled_from([1, 8])),
        dropout=draw(st.sampled_from([0.0, 0.2])), bn_eps=draw(EPS), bn_momentum=draw(MOMENTUM),
        in_channels=draw(st.integers(1, 3)),
        image_size=(draw(st.integers(4, 12)), draw(st.integers(4, 12))),
        num_classes=draw(st.integers(0, 4)),
    )


@st.composite
def efficientnet(draw: Any) -> EfficientNetSpec:
    """One or two small stages, scaled in width and depth."""
    stages = tuple(MBStage(
        expand_ratio=draw(st.sampled_from([1, 2])), kernel=draw(st.sampled_from([3, 5])),
        stride=draw(st.sampled_from([1, 2])), channels=draw(st.sampled_from([4, 8])),
        layers=draw(st.integers(1, 2)),
    ) for _ in range(draw(st.integers(1, 2))))
    return EfficientNetSpec(
        stages=stages, width_mult=draw(st.sampled_from([0.5, 1.0, 1.4])),
        depth_mult=draw(st.sampled_from([1.0, 1.5])), stem_width=draw(st.sampled_from([4, 8])),
        head_ratio=draw(st.integers(1, 2)), se_reduction=draw(st.sampled_from([2, 4])),
        stochastic_depth=draw(st.sampled_from([0.0, 0.2])),
        dropout=draw(st.sampled_from([0.0, 0.2])), bn_eps=draw(EPS), bn_momentum=draw(MOMENTUM),
        in_channels=draw(st.integers(1, 3)),
        image_size=(draw(st.integers(4, 12)), draw(st.integers(4, 12))),
        num_classes=draw(st.integers(0, 4)),
    )


#: family -> strategy of valid specs
VALID: dict[str, Any] = {
    "mlp": mlp(), "cnn": cnn(), "resnet": resnet(), "vit": vit(), "unet": unet(),
    "recurrent": recurrent(), "transformer": transformer(), "convnext": convnext(),
    "hybrid": hybrid(), "mobilenet": mobilenet(), "efficientnet": efficientnet(),
}
