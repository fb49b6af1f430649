"""Named variants: model name -> spec, gathered from each family's variant table.

Variants are data (a dict in each `nnzoo/specs/<family>.py`), so listing the zoo imports no
framework. A name registered twice is an error, not a silent overwrite.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from nnzoo.errors import SpecError, UnknownModelError
from nnzoo.specs import FAMILIES
from nnzoo.specs.base import Spec


@dataclass(frozen=True)
class Entry:
    """A registered model: its name, spec, a one-line description (with its source), and the
    parameter counts its source publishes (`{"trainable": n}` or `{"total": n}`), which the
    parity suite checks against both builds."""

    name: str
    spec: Spec
    description: str = ""
    published: Mapping[str, int] = field(default_factory=dict)


@cache
def _table() -> dict[str, Entry]:
    table: dict[str, Entry] = {}
    for family in FAMILIES:
        module = importlib.import_module(f"nnzoo.specs.{family}")
        for name, (spec, description, *published) in module.VARIANTS.items():
            if name in table:
                raise ValueError(f"model name {name!r} is registered twice")
            table[name] = Entry(name, spec, description, *published)
    return table


def spec_classes() -> dict[str, type[Spec]]:
    """family name -> spec class, for `spec_from_dict`."""
    return {f: importlib.import_module(f"nnzoo.specs.{f}").SPEC for f in FAMILIES}


def _natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_models(pattern: str | None = None, *, family: str | None = None) -> list[str]:
    """Registered names matching a shell wildcard (`resnet*`), naturally sorted (18 < 101)."""
    if family is not None and family not in FAMILIES:
        raise SpecError("family", family, f"one of {', '.join(FAMILIES)}")
    names = [
        e.name
        for e in _table().values()
        if (family is None or e.spec.family == family)
        and (pattern is None or fnmatch.fnmatchcase(e.name, pattern))
    ]
    return sorted(names, key=_natural_key)


def entry(name: str) -> Entry:
    """The registered model `name`; a family name is not a model (its variants are suggested)."""
    try:
        return _table()[name]
    except KeyError:
        families = {f: list_models(family=f) for f in FAMILIES}
        raise UnknownModelError(name, _table(), families) from None


def get_spec(name: str, **overrides: Any) -> Spec:
    """The registered spec for `name`, with `overrides` applied and validated."""
    return entry(name).spec.replace(**overrides)


def spec_from_dict(data: Mapping[str, Any]) -> Spec:
    """Rebuild a spec from `Spec.to_dict()` output (e.g. loaded from JSON); refuses unknown keys."""
    if not isinstance(data, Mapping):
        raise SpecError("spec", type(data).__name__, "expected a mapping with a 'family' key")
    fields = dict(data)
    family = fields.pop("family", None)
    classes = spec_classes()
    if family not in classes:
        raise SpecError("family", family, f"one of {', '.join(classes)}")
    return classes[family].from_fields(fields)


def resolve(name_or_spec: str | Spec | Mapping[str, Any], **overrides: Any) -> Spec:
    """A registered name, a spec or a spec dict -> a validated spec with overrides applied."""
    if isinstance(name_or_spec, str):
        return get_spec(name_or_spec, **overrides)
    if isinstance(name_or_spec, Spec):
        return name_or_spec.replace(**overrides)
    if isinstance(name_or_spec, Mapping):
        return spec_from_dict(name_or_spec).replace(**overrides)
    raise SpecError(
        "name_or_spec", name_or_spec, "expected a registered model name, a spec or a spec dict"
    )
