"""nnzoo's errors: each names what was wrong and what is allowed.

They are raised before any framework is imported wherever that is possible, so a typo costs
milliseconds, not a TensorFlow start-up.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence


class NnzooError(Exception):
    """Base class of every error nnzoo raises on purpose."""


def close_matches(word: str, options: Iterable[str], n: int = 3) -> list[str]:
    """The registered names closest to `word`, best first (for 'did you mean')."""
    return difflib.get_close_matches(word, list(options), n=n, cutoff=0.6)


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    near = close_matches(word, options)
    return f"; did you mean {', '.join(repr(m) for m in near)}?" if near else ""


class UnknownModelError(NnzooError, LookupError):
    """A model name that is not in the registry.

    `families` (family -> its model names) turns a family name (`mlp`), or a near miss of one
    closer than any model name (`mpl`), into that family's models as the suggestions.
    """

    def __init__(self, name: str, known: Iterable[str],
                 families: Mapping[str, Sequence[str]] | None = None) -> None:
        self.name = name
        known = sorted(known)
        families = dict(families or {})
        self.family = name if name in families else _closer_family(name, known, families)
        if self.family is not None:
            self.suggestions = list(families[self.family])
            choose = f"choose one of {', '.join(self.suggestions)}"
            if self.family == name:
                message = f"{name!r} is a family, not a model: {choose}"
            else:
                message = f"unknown model {name!r}; did you mean the family {self.family!r}? {choose}"
        else:
            self.suggestions = close_matches(name, known)
            hint = _did_you_mean(name, known) or f"; see nnzoo.list_models() ({len(known)} models)"
            message = f"unknown model {name!r}{hint}"
        super().__init__(message)


def _closer_family(name: str, known: list[str], families: Mapping[str, Sequence[str]]) -> str | None:
    """The family `name` is a near miss of, if it is nearer than every model name."""
    def score(option: str) -> float:
        return difflib.SequenceMatcher(None, name, option).ratio()

    family = next(iter(close_matches(name, families, n=1)), None)
    if family is None:
        return None
    best_model = max((score(m) for m in close_matches(name, known, n=1)), default=0.0)
    return family if score(family) > best_model else None


class SpecError(NnzooError, ValueError):
    """An invalid value in a spec: names the field, the value and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str, *, family: str = "") -> None:
        self.field, self.value, self.allowed, self.family = field, value, allowed, family
        where = f"{family}." if family else ""
        super().__init__(f"{where}{field}={value!r} is invalid: {allowed}")


class UnknownFieldError(SpecError):
    """An override or spec-dict key that the family does not have."""

    def __init__(self, field: str, valid: Iterable[str], *, family: str = "") -> None:
        valid = sorted(valid)
        self.valid = valid
        near = _did_you_mean(field, valid)
        NnzooError.__init__(
            self,
            f"{family or 'spec'} has no field {field!r}{near}; valid fields: {', '.join(valid)}",
        )
        self.field, self.value, self.allowed, self.family = field, None, ", ".join(valid), family


class MissingFieldError(SpecError):
    """A spec dict (or a nested part of one) without a field that has no default."""

    def __init__(self, field: str, expected: str, *, family: str = "") -> None:
        where = f"{family}." if family else ""
        NnzooError.__init__(self, f"{where}{field} is required ({expected}) and was not given")
        self.field, self.value, self.allowed, self.family = field, None, expected, family


class BackendError(NnzooError, ValueError):
    """A backend name that nnzoo does not know."""

    def __init__(self, backend: object, known: Iterable[str]) -> None:
        self.backend = backend
        super().__init__(f"unknown backend {backend!r}; choose one of: {', '.join(known)}")


class BackendNotInstalledError(NnzooError, ImportError):
    """A known backend whose framework packages are missing."""

    def __init__(self, backend: str, missing: str, extra: str) -> None:
        self.backend, self.missing = backend, missing
        super().__init__(
            f"the {backend!r} backend needs the {missing!r} package, which is not installed; "
            f'install it with: pip install "nnzoo[{extra}]"'
        )


class KerasBackendError(NnzooError, RuntimeError):
    """A Keras backend asked for after Keras has loaded another one in this process."""

    def __init__(self, wanted: str, active: str) -> None:
        self.wanted, self.active = wanted, active
        super().__init__(
            f"Keras is already running on {active!r} in this process and cannot switch to "
            f"{wanted!r}: Keras picks its backend once, at import. Start a new process with "
            f"KERAS_BACKEND={wanted} (or `nnzoo parity ... --keras-backend {wanted}`)"
        )


class InputError(NnzooError, ValueError):
    """A model called on an input it cannot take."""


class InputShapeError(InputError):
    """An input of the wrong shape: the message names the expected one."""


class InputDtypeError(InputError):
    """Token ids that are not integers, or an image/vector/sequence that is not floating point."""


class OptimizeError(NnzooError, ValueError):
    """An `nnzoo.optimize` argument that cannot be used: names it and what is allowed."""


class NotAModelError(NnzooError, TypeError):
    """Something given where a PyTorch module or a Keras model is needed."""


class DeviceError(NnzooError, ValueError):
    """An unknown device, or a GPU asked for where none is visible."""


class WeightTransferError(NnzooError, ValueError):
    """Weights that do not fit the destination model; lists every offending name."""

    def __init__(self, summary: str, problems: Iterable[str] = ()) -> None:
        self.problems = list(problems)
        lines = [summary, *(f"  - {p}" for p in self.problems)]
        super().__init__("\n".join(lines))


class MemoryGuardError(NnzooError, MemoryError):
    """A build or check whose estimated memory exceeds the memory available, refused before
    anything is allocated. `needed` and `available` are bytes; the message says how to override."""

    def __init__(self, message: str, *, needed: int, available: int, source: str) -> None:
        self.needed, self.available, self.source = needed, available, source
        super().__init__(message)


class UnknownLayerError(NnzooError, TypeError):
    """A layer type a tool has no rule for (the FLOPs counter's formulas): named, never silently
    counted as nothing."""

    def __init__(self, summary: str, problems: Iterable[str] = ()) -> None:
        self.problems = list(problems)
        super().__init__("\n".join([summary, *(f"  - {p}" for p in self.problems)]))


class ExportFormatError(NnzooError, ValueError):
    """An export format that this model's backend (or family) cannot write: says why, and names
    the formats it can write."""

    def __init__(self, fmt: object, where: str, reason: str, can: Iterable[str]) -> None:
        self.format, self.where, self.reason, self.can = fmt, where, reason, list(can)
        super().__init__(f"cannot export {where} as {fmt!r}: {reason}; it can be written as: "
                         f"{', '.join(self.can) or 'nothing'}")


class ExportDependencyError(BackendNotInstalledError):
    """An exporter or runtime package that is missing (a `BackendNotInstalledError`)."""

    def __init__(self, fmt: str, missing: str, extra: str = "export") -> None:
        self.backend, self.missing, self.format = fmt, missing, fmt
        NnzooError.__init__(
            self, f"the {fmt!r} format needs the {missing!r} package, which is not installed; "
                  f'install it with: pip install "nnzoo[{extra}]"')


class ExportCheckError(NnzooError, AssertionError):
    """An exported artifact whose outputs, run in its own runtime, disagree with the native
    model's beyond the float32 parity bound (the artifact is left on disk for inspection)."""


class LabelError(InputError):
    """Labels or regression targets that do not fit the model's output and loss: class ids out of
    range for `num_classes`, the wrong shape, or the wrong dtype."""


class DistributedError(NnzooError, RuntimeError):
    """A data-parallel run whose workers could not start or did not finish: a port in use, a
    worker that crashed or was killed, or one that ran past its time. Every worker of the run
    has been stopped by the time this is raised; `pids` are theirs (all gone), `rank` the worker
    that failed first (None when no single one did)."""

    def __init__(self, message: str, *, rank: int | None = None, pids: tuple[int, ...] = ()) -> None:
        self.rank, self.pids = rank, pids
        super().__init__(message)
