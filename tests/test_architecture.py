"""The two builds mirror each other: each pair of twin files (`nnzoo/torch_impl/<m>.py`,
`nnzoo/keras_impl/<m>.py`) defines the same public helpers, taking the same parameters in the
same order. Read from the source (no framework is imported), so it costs milliseconds.

The convention both sides follow:
- a PyTorch helper is a function or an `nn.Module` class (`EncoderBlock` is the twin of Keras's
  `encoder_block`); the model class (a `ZooModule`) is the twin of Keras's `graph`;
- where the PyTorch helper takes its input's width `c_in`, the Keras twin takes the input tensor
  `x` in the same place (Keras reads the width from it); a helper that only makes a layer
  (`norm`) takes no tensor in Keras, whose layer reads the width when first called; other
  tensors (`skip`, `mask`) are PyTorch `forward()` arguments, so only Keras lists them;
- every Keras helper that makes layers ends with the keyword-only `name` (its twin's module path);
- at most three positional parameters besides tensors; the rest are keyword-only.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from nnzoo.specs import FAMILIES

ROOT = Path(__file__).resolve().parents[1] / "nnzoo"
TWINS = (*FAMILIES, "layers", "attention")

#: Helpers (and parameters) that exist on one side only, each with its reason: the one list.
ONE_SIDED: dict[str, str] = {
    "keras_impl.layers.model_input":
        "a Keras functional graph starts from a keras.Input; a PyTorch module gets its input "
        "in forward()",
    "keras_impl.layers.conv_padding":
        "Keras convolutions pad only 'same' or 'valid'; PyTorch's take the padding as a number",
    "keras_impl.resnet.residual":
        "the Add and ReLU layers ending a block; PyTorch adds the shortcut in place in the "
        "block's forward()",
    "torch_impl.resnet.block":
        "the base class of PyTorch's two block modules (their shared shortcut); Keras blocks "
        "are functions",
    "keras_impl.vit.tokens":
        "PyTorch's is the model's `tokens` method: `conv_proj` is the model's own child "
        "(torchvision's key)",
    "torch_impl.recurrent.step_lengths":
        "packing a padded batch needs each sequence's length; Keras computes its step mask in "
        "the StepMask layer",
    "torch_impl.recurrent.step_mask":
        "as step_lengths: Keras computes the mask in the StepMask layer",
    "torch_impl.convnext.permute":
        "PyTorch's block turns NCHW to channels-last and back around its norm and MLP; the Keras "
        "build is channels-last throughout",
    "torch_impl.mobilenet.inverted_residual":
        "the module holding a block's layers and its residual add; Keras blocks are functions "
        "(`mobile_block`, `mb_conv`) that end in `block_output`",
    "keras_impl.mobilenet.block_output":
        "the Add layer ending a block that keeps its size; PyTorch adds in the block's forward()",
    "torch_impl.layers.activation(inplace)":
        "overwriting the input saves a feature map per activation (MobileNet, EfficientNet: "
        "measured 5-20% of their CPU time); Keras tensors are immutable",
    "torch_impl.layers.hard_sigmoid":
        "nn.Hardsigmoid's float64 gradient is float32-precise, so PyTorch's gate is written out; "
        "Keras's hard_sigmoid is exact and is one case of its Act layer",
    "torch_impl.layers.channels_last":
        "marks a PyTorch module that runs channels-last inside an NCHW network; every Keras "
        "image layer is channels-last",
    "torch_impl.layers.norm(dims)":
        "PyTorch picks BatchNorm1d or BatchNorm2d; Keras normalizes the last axis of any rank",
}

TENSORS = {"x", "skip", "mask"}  # tensors: Keras-only except `x` of a PyTorch tensor function
INPUT = {"torch": "c_in", "keras": "x"}  # the input width / the input tensor: same place


@dataclass
class Helper:
    name: str
    params: list[tuple[str, str]]  # (name, "positional" | "keyword"), without self


def _params(fn: ast.FunctionDef | None, skip_self: bool) -> list[tuple[str, str]]:
    if fn is None:
        return []
    positional = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
    if skip_self:
        positional = positional[1:]
    return [(p, "positional") for p in positional] + [(a.arg, "keyword") for a in fn.args.kwonlyargs]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def helpers(source: str, side: str) -> dict[str, Helper]:
    """Public helpers of one twin file: functions, and on the PyTorch side its module classes
    other than the model (a ZooModule subclass). Keras layer classes are implementations, not
    helpers; Keras's `graph` is the twin of the PyTorch model class."""
    tree = ast.parse(source)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    found: dict[str, Helper] = {}
    for node in tree.body:
        if getattr(node, "name", "_").startswith("_"):  # private, or not a definition
            continue
        if isinstance(node, ast.FunctionDef) and not (side == "keras" and node.name == "graph"):
            found[node.name] = Helper(node.name, _params(node, skip_self=False))
        elif isinstance(node, ast.ClassDef) and side == "torch":
            bases = [ast.unparse(b) for b in node.bases]
            if node.name == "ZooModule" or "ZooModule" in bases:
                continue
            init, cls = None, node
            while init is None and cls is not None:  # __init__ here or in a local base class
                init = next((f for f in cls.body if isinstance(f, ast.FunctionDef)
                             and f.name == "__init__"), None)
                cls = next((classes[b] for b in (ast.unparse(x) for x in cls.bases)
                            if b in classes), None)
            found[_snake(node.name)] = Helper(node.name, _params(init, skip_self=True))
    return found


def compare(module: str, torch_src: str, keras_src: str) -> list[str]:
    """Every way the twins differ, as lines; exceptions come from ONE_SIDED."""
    sides = {"torch": helpers(torch_src, "torch"), "keras": helpers(keras_src, "keras")}
    problems = []
    for side, other in (("torch", "keras"), ("keras", "torch")):
        for name in sorted(set(sides[side]) - set(sides[other])):
            if f"{side}_impl.{module}.{name}" not in ONE_SIDED:
                problems.append(f"{side}_impl/{module}.py: {name} has no twin in "
                                f"{other}_impl/{module}.py")
    for name in sorted(set(sides["torch"]) & set(sides["keras"])):
        t, k = sides["torch"][name].params, sides["keras"][name].params
        t_names, k_names = [p for p, _ in t], [p for p, _ in k]
        if INPUT["torch"] in t_names and INPUT["keras"] in k_names and \
                t_names.index(INPUT["torch"]) != k_names.index(INPUT["keras"]):
            problems.append(f"{module}.{name}: Keras's `x` is not where PyTorch's `c_in` is "
                            f"({t_names} vs {k_names})")
        drop = TENSORS | {"c_in", "name"}
        t_rest = [p for p in t if p[0] not in drop and f"torch_impl.{module}.{name}({p[0]})"
                  not in ONE_SIDED]
        k_rest = [p for p in k if p[0] not in drop and f"keras_impl.{module}.{name}({p[0]})"
                  not in ONE_SIDED]
        if t_rest != k_rest:
            problems.append(f"{module}.{name}: parameters differ: torch {t} vs keras {k}")
        if k and k[-1] != ("name", "keyword") and "name" in k_names:
            problems.append(f"keras_impl/{module}.py {name}: `name` must be keyword-only, last")
    for side in ("torch", "keras"):
        for h in sides[side].values():
            positional = [p for p, kind in h.params if kind == "positional" and p not in TENSORS]
            if len(positional) > 3:
                problems.append(f"{side}_impl/{module}.py {h.name}: {len(positional)} positional "
                                f"parameters {positional}; make those after the third keyword-only")
    return problems


def _read(side: str, module: str) -> str:
    return (ROOT / f"{side}_impl" / f"{module}.py").read_text()


@pytest.mark.parametrize("module", TWINS)
def test_twin_files_define_the_same_helpers_with_the_same_parameters(module: str) -> None:
    problems = compare(module, _read("torch", module), _read("keras", module))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_both_builds(family: str) -> None:
    torch_names = helpers(_read("torch", family), "torch")
    keras_src = _read("keras", family)
    assert "build" in torch_names and "build" in helpers(keras_src, "keras")
    assert re.search(r"^def graph\(spec", keras_src, re.MULTILINE), "keras_impl needs graph(spec)"


def test_every_exception_is_still_needed() -> None:
    """A one-sided helper that gained its twin (or went away) leaves the list."""
    stale = []
    for key in ONE_SIDED:
        side, module, name = re.fullmatch(r"(torch|keras)_impl\.(\w+)\.(\w+)(?:\(\w+\))?",
                                          key).groups()
        mine = helpers(_read(side, module), side)
        other = helpers(_read("keras" if side == "torch" else "torch", module),
                        "keras" if side == "torch" else "torch")
        param = re.search(r"\((\w+)\)$", key)
        if param:
            ok = name in mine and param.group(1) in [p for p, _ in mine[name].params]
        else:
            ok = name in mine and name not in other
        if not ok:
            stale.append(key)
    assert not stale, f"stale ONE_SIDED entries: {stale}"


def test_the_check_catches_what_it_is_for() -> None:
    torch_src = '''
class Block(nn.Module):
    def __init__(self, spec, c_in, width, stride): ...
def conv(spec, c_in, c_out, *, kernel): ...
def only_here(spec): ...
'''
    keras_src = '''
def block(spec, width, x, *, stride, name): ...
def conv(spec, x, c_out, *, kernel, stride, name): ...
'''
    problems = "\n".join(compare("toy", torch_src, keras_src))
    assert "only_here has no twin" in problems
    assert "toy.block: Keras's `x` is not where PyTorch's `c_in` is" in problems
    assert "toy.block: parameters differ" in problems  # stride positional vs keyword-only
    assert "toy.conv: parameters differ" in problems  # stride only in Keras
    assert "4 positional" in problems  # Block(spec, c_in, width, stride)
