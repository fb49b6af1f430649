"""`nnzoo diagram`: data flow from the Keras graph for every family; text formats need nothing,
SVG/PNG need Graphviz's `dot` (skipped without it) and say so clearly when it is missing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import smallest

import nnzoo
from nnzoo.cli import main
from nnzoo.diagram import build_graph, diagram, to_dot, to_mermaid
from nnzoo.errors import NnzooError
from nnzoo.specs import FAMILIES

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` program is "
                               "not installed (apt-get install graphviz)")


@pytest.mark.parametrize("family", [f for f in FAMILIES if nnzoo.list_models(family=f)])
def test_every_family_has_a_diagram(family: str) -> None:
    name = smallest(family)
    graph = build_graph(name)
    spec = nnzoo.get_spec(name)
    ids = {n.id for n in graph.nodes}
    assert all(e.src in ids and e.dst in ids for e in graph.edges)
    out = graph.nodes[-1]
    assert out.layers == [("output", "")]
    final = [e for e in graph.edges if e.dst == out.id]
    assert [e.shape for e in final] == [spec.output_shape(1)]
    mermaid, dot = to_mermaid(graph), to_dot(graph)
    assert mermaid.startswith("flowchart TD") and "-->" in mermaid
    assert dot.startswith("digraph") and dot.rstrip().endswith("}") and "->" in dot
    shape = "x".join(map(str, spec.input_shape()))
    assert f'"{shape}"' in mermaid  # the input edge carries the input's shape


def test_residual_blocks_show_skip_connections() -> None:
    name = "resnet18_cifar" if "resnet18_cifar" in nnzoo.list_models() else smallest("resnet")
    graph = build_graph(name)
    adds = [n for n in graph.nodes if n.merge]
    assert len(adds) == 8  # one per basic block
    skips = [e for e in graph.edges if e.skip]
    assert len(skips) == 5  # identity shortcuts (the other 3 blocks project: downsample)
    assert {n.group for n in adds} >= {"layer1.0", "layer4.1"}
    mermaid = to_mermaid(graph)
    assert 'subgraph' in mermaid and "-.->" in mermaid and '"64x32x32"' in mermaid


def test_unet_shows_concatenations() -> None:
    if not nnzoo.list_models(family="unet"):
        pytest.skip("unet is not registered")
    dot = diagram("unet_small", "dot", depth=2)
    assert dot.count("(Concatenate)") == 2
    assert len(re.findall(r"style=dashed", dot)) == 2  # encoder features skipping to the decoder


@needs_dot
def test_svg_and_png(tmp_path: Path) -> None:
    svg = diagram("mlp_small", "svg")
    assert isinstance(svg, bytes) and b"<svg" in svg and b"hidden.0" in svg
    out = tmp_path / "m.png"
    assert main(["diagram", "cnn_small", "--format", "png", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")


def test_a_missing_dot_program_is_explained(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import nnzoo.diagram as module

    monkeypatch.setattr(module.shutil, "which", lambda _: None)
    with pytest.raises(NnzooError, match="apt-get install graphviz"):
        diagram("mlp_small", "svg")
    with pytest.raises(NnzooError, match="--format mermaid"):
        module.render("digraph {}", "png")
    assert main(["diagram", "mlp_small", "--format", "png"]) == 2
    assert "Graphviz" in capsys.readouterr().err
    assert main(["diagram", "mlp_small"]) == 0  # the text formats still work
    assert capsys.readouterr().out.startswith("flowchart TD")


def test_unknown_format() -> None:
    with pytest.raises(nnzoo.SpecError, match="format"):
        diagram("mlp_small", "gif")
