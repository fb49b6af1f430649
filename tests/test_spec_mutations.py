"""Hostile spec dicts: a valid spec's dict of every family, mutated -- a field dropped, added,
retyped or rescaled, at any depth -- is either a valid spec or a `SpecError` naming a field.
Never a Python or framework exception. No model is built: this is the spec layer alone."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import nnzoo
from nnzoo.errors import MissingFieldError, SpecError, UnknownFieldError
from nnzoo.registry import spec_classes
from nnzoo.specs import FAMILIES
from strategies import VALID

#: 30 examples per family (210 for the seven): derandomized, so every run checks the same dicts.
MUTATIONS = settings(max_examples=100, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Values a user (or a JSON file, or a bug) might put anywhere, most of them wrong somewhere.
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 3, 10**30, -(10**30), 1.5, -0.5, 0.0, float("nan"), float("inf"),
    -float("inf"), "", "relu", "batch", "64", [], [1], [1, 2], [[1]], [-3, 4], {}, {"a": 1},
    {"channels": 4}, (1, -2), b"\x00", 1 + 2j, object(), {1, 2}, np.int64(3), np.float32(0.5),
    np.array([1, 2]), np.bool_(True), np.str_("max"),
]
#: Keys that do not belong: misspellings, other families' fields, non-strings, dunders.
ODD_KEYS: list[Any] = ["bogus", "num_class", "depth", "stages", "embed_dim", "__class__", 1, None,
                       ("t",), 2.5]
FACTORS = [-1, 0, 2, 1000, 10**9, 10**30, 0.5]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a nested dict/list, parents before children."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, v in value.items():
            found += _paths(v, (*prefix, key))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        root = root[key]
    return root


def _mutate(root: dict[str, Any], data: Any) -> None:
    """One mutation of `root`, in place."""
    kind = data.draw(st.sampled_from(["drop", "add", "retype", "rescale", "resize"]))
    containers = [()] + [p for p in _paths(root) if isinstance(_parent(root, p)[p[-1]], dict | list)]
    if kind == "add":
        where = data.draw(st.sampled_from(containers))
        target = root if not where else _parent(root, where)[where[-1]]
        if isinstance(target, dict):
            target[data.draw(st.sampled_from(ODD_KEYS))] = data.draw(st.sampled_from(ODD_VALUES))
        else:
            target.append(data.draw(st.sampled_from(ODD_VALUES)))
        return
    paths = _paths(root)
    if kind == "resize":
        lists = [p for p in paths if isinstance(_parent(root, p)[p[-1]], list)]
        if lists:
            path = data.draw(st.sampled_from(lists))
            items = _parent(root, path)[path[-1]]
            if items and data.draw(st.booleans()):
                items.pop(data.draw(st.integers(0, len(items) - 1)))
            else:
                items.extend(copy.deepcopy(items[:1]) or [1])
            return
        kind = "drop"
    path = data.draw(st.sampled_from(paths))
    parent = _parent(root, path)
    if kind == "drop":
        del parent[path[-1]]
    elif kind == "retype":
        parent[path[-1]] = data.draw(st.sampled_from(ODD_VALUES))
    else:  # rescale a number (or, if not a number, turn it into a huge one)
        value, factor = parent[path[-1]], data.draw(st.sampled_from(FACTORS))
        number = isinstance(value, int | float) and not isinstance(value, bool)
        parent[path[-1]] = value * factor if number else factor


def _root_field(field: str) -> str:
    return re.split(r"[.\[]", field, maxsplit=1)[0]


@pytest.mark.parametrize("family", FAMILIES)
@MUTATIONS
@given(data=st.data())
def test_a_mutated_spec_dict_is_a_valid_spec_or_a_spec_error(family: str, data: Any) -> None:
    try:
        spec = data.draw(VALID[family])
    except SpecError:
        assume(False)
        return
    mutated = copy.deepcopy(spec.to_dict())
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(mutated, data)
    try:
        result = nnzoo.spec_from_dict(mutated)
    except SpecError as exc:
        # Names the field: one of the family's (or `family`, or the dict itself), or the key
        # that does not belong.
        known = set(spec_classes()[family].field_names()) | {"family", "spec"}
        assert isinstance(exc.field, str) and exc.field in str(exc), repr(exc)
        stray = isinstance(exc, UnknownFieldError) and exc.field in map(str, mutated)
        assert _root_field(exc.field) in known or stray, repr(exc)
        return
    # Accepted: then it is a complete, valid, JSON-ready spec that describes its input and output.
    again = nnzoo.spec_from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert len(result.output_shape(1)) >= 2 and all(n >= 1 for n in result.input_shape())


def test_each_kind_of_hostile_dict_gets_its_own_error() -> None:
    """The reproductions of issue 19, and one of each kind the mutation test draws."""
    good = nnzoo.get_spec("cnn_small").to_dict()
    cases = [
        ({"family": "mlp"}, MissingFieldError, "input_size"),
        ({"family": ["mlp"]}, SpecError, "family"),
        (good | {"stages": [{}]}, MissingFieldError, r"stages\[0\]\.channels"),
        (good | {"stages": [{"channels": 8, 7: 1}]}, UnknownFieldError, r"stages\[0\]\.7"),
        (good | {"norm": "group", "gn_groups": 0}, SpecError, "gn_groups"),
        (good | {"dropout": float("nan")}, SpecError, "dropout"),
        (good | {"num_classes": 10**30 * 1.0}, SpecError, "num_classes"),
        (good | {"image_size": object()}, SpecError, "image_size"),
    ]
    for data, error, field in cases:
        with pytest.raises(error, match=field):
            nnzoo.spec_from_dict(data)
