"""Hypothesis strategies: small random *valid* specs, one strategy per family.

Each draws only from the values its family documents, at sizes a 2-core CI runs in seconds.
A family added to the zoo gets a strategy here; `test_properties.py` checks that none is missing.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from nnzoo.specs.cnn import CNNSpec, ConvStage
from nnzoo.specs.mlp import MLPSpec

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


#: family -> strategy of valid specs
VALID: dict[str, Any] = {"mlp": mlp(), "cnn": cnn()}
