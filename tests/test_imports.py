"""The layers of the house: each nnzoo module imports only from its own layer or below.

errors, layout, offload -> specs (and the registry) -> links -> backends, runtime -> the two
builds -> tracing -> conversion -> checks -> tools -> the CLI and the package's public face.
Imports inside functions count too: a lazy upward import is still an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nnzoo

PACKAGE = Path(nnzoo.__file__).parent

#: module-name prefix -> layer; the longest matching prefix decides
LAYERS: dict[str, int] = {
    "nnzoo.errors": 0, "nnzoo.layout": 0, "nnzoo.offload": 0,
    "nnzoo.specs": 1, "nnzoo.registry": 1,
    "nnzoo.links": 2,
    "nnzoo.backends": 3, "nnzoo.runtime": 3, "nnzoo.guard": 3, "nnzoo.launch": 3,
    "nnzoo.xla": 3,
    "nnzoo.torch_impl": 4, "nnzoo.keras_impl": 4,
    "nnzoo.tracing": 5,
    "nnzoo.safetensors_io": 6, "nnzoo.conversion": 6,
    "nnzoo.parity": 7, "nnzoo.training": 7, "nnzoo.distributed": 7, "nnzoo.keras_worker": 7,
    "nnzoo.costs": 8, "nnzoo.explain": 8, "nnzoo.differences": 8, "nnzoo.probes": 8,
    "nnzoo.diagram": 8, "nnzoo.report": 8, "nnzoo.fast": 8, "nnzoo.exporting": 8,
    "nnzoo.references": 8,
    "nnzoo.cli": 9, "nnzoo.__main__": 9, "nnzoo": 9,
}


def layer_of(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len,
               default=None)
    if best is None:
        raise KeyError(f"{module} has no place in LAYERS: add it to the layer it belongs to")
    return LAYERS[best]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every nnzoo module `path` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("nnzoo"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nnzoo"):
            found.add(node.module)
            # `from nnzoo import parity` imports the module nnzoo.parity
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/")).is_dir()
                         or (PACKAGE.parent / (f"{node.module}.{a.name}".replace(".", "/") + ".py")
                             ).is_file())
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_upward_import(path: Path) -> None:
    here = module_name(path)
    upward = sorted(m for m in imports(path)
                    if m != "nnzoo" and layer_of(m) > layer_of(here))
    assert not upward, f"{here} (layer {layer_of(here)}) imports from above: " + ", ".join(
        f"{m} (layer {layer_of(m)})" for m in upward)


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        layer_of(module_name(path))


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The walker is not blind: a lazy `from nnzoo.conversion import ...` inside a build counts."""
    fake = tmp_path / "mod.py"
    fake.write_text("def f():\n    from nnzoo.conversion import state_dict\n")
    assert "nnzoo.conversion" in imports(fake)
    assert layer_of("nnzoo.conversion") > layer_of("nnzoo.keras_impl.resnet")
