"""`nnzoo diagram`: a model's data flow -- blocks, skip connections, concatenations, shapes.

The graph is read from the Keras build's functional graph (its layers and the tensors between
them already encode every residual `Add` and U-Net `Concatenate`), so no family needs code
here. For readability:
- layers are grouped into blocks by name: a prefix ending in an index (`layer1.0`,
  `encoder.layers.encoder_layer_3`, `decoder.1`) shared by several layers is a block;
- a chain of layers in one block, each feeding only the next, becomes one node;
- edges carry the canonical shape of the tensor they carry (batch 1 dropped: `64x56x56`);
  an edge into a merge (add / concatenate) from a tensor that is also used elsewhere is a skip
  connection, drawn dashed.

Mermaid and DOT are plain text and need nothing installed. SVG and PNG are rendered from the
DOT text by Graphviz: the `graphviz` Python package (in nnzoo's dev extra) and the `dot`
program, which comes from the system's package manager (`apt-get install graphviz`,
`brew install graphviz`, `conda install graphviz`).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from typing import Any

from nnzoo.errors import NnzooError
from nnzoo.links import torch_path
from nnzoo.registry import resolve
from nnzoo.specs.base import Spec

FORMATS = ("mermaid", "dot", "svg", "png")
MERGES = ("Add", "Concatenate", "Multiply", "Average", "Maximum", "Subtract")
_INDEX = re.compile(r"^\d+$|_\d+$|^l\d+$")  # `0`, `encoder_layer_0`, `l0`: a block's index


@dataclass
class Node:
    id: str
    layers: list[tuple[str, str]]  # (name, Keras class)
    group: str = ""
    boxed: bool = True  # drawn inside its block's box (False: the block's only node)

    @property
    def merge(self) -> bool:
        return self.layers[0][1] in MERGES

    def label(self, newline: str) -> str:
        """One line per layer, names relative to the block (named on top if not boxed)."""
        prefix = self.group + "." if self.group else ""
        lines = [] if self.boxed or not self.group else [f"[{self.group}]"]
        for name, kind in self.layers:
            short = "" if name == self.group else name[len(prefix):] if name.startswith(prefix) \
                else name
            lines.append(f"{short} ({kind})" if short else kind)
        return newline.join(lines)


@dataclass
class Edge:
    src: str
    dst: str
    shape: tuple[int, ...] | None
    skip: bool = False

    @property
    def label(self) -> str:
        return "x".join(map(str, self.shape[1:])) if self.shape else ""


@dataclass
class Graph:
    name: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def groups(self) -> dict[str, list[Node]]:
        """Block name -> its nodes ("" for nodes drawn outside any box)."""
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            out.setdefault(n.group if n.boxed else "", []).append(n)
        return out


def _blocks(names: list[str]) -> set[str]:
    """Prefixes ending in an index that at least two layer names share."""
    counts: dict[str, int] = {}
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            if _INDEX.search(parts[i - 1]):
                prefix = ".".join(parts[:i])
                counts[prefix] = counts.get(prefix, 0) + 1
    return {p for p, c in counts.items() if c >= 2}


def _group(name: str, blocks: set[str]) -> str:
    return max((b for b in blocks if name == b or name.startswith(b + ".")), key=len, default="")


def _producers(layer: Any) -> list[tuple[str, int]]:
    """(layer name, output index) of each distinct tensor this layer reads, in order."""
    seen: list[tuple[str, int]] = []
    for node in getattr(layer, "_inbound_nodes", []):
        for t in node.input_tensors:
            history = t._keras_history
            key = (torch_path(history.operation.name), history.tensor_index)
            if key not in seen:
                seen.append(key)
    return seen


def build_graph(name_or_spec: str | Spec | dict[str, Any], **overrides: Any) -> Graph:
    """The data-flow graph of a model, from its Keras build (no weights are computed)."""
    from nnzoo import backends
    from nnzoo.tracing import keras_shapes

    spec = resolve(name_or_spec, **overrides)
    model = backends.build_native(spec, "keras")
    shapes = {(torch_path(n), i): s for (n, i), s in keras_shapes(model, spec).items()}
    layers = list(model.operations)  # layers, and keras.ops calls (`expand_dims`) between them
    kinds = {torch_path(layer.name): type(layer).__name__ for layer in layers}
    reads = {torch_path(layer.name): _producers(layer) for layer in layers}
    consumers: dict[str, list[str]] = {torch_path(layer.name): [] for layer in layers}
    for name, sources in reads.items():
        for src, _ in sources:
            consumers[src].append(name)
    blocks = _blocks([torch_path(layer.name) for layer in layers])
    node_of: dict[str, Node] = {}
    graph = Graph(name_or_spec if isinstance(name_or_spec, str) else spec.family)
    for layer in layers:  # topological order: a chain continues or a node starts
        name, sources = torch_path(layer.name), reads[torch_path(layer.name)]
        group = _group(name, blocks)
        prev = node_of.get(sources[0][0]) if len(sources) == 1 else None
        chained = (prev is not None and len(consumers[sources[0][0]]) == 1
                   and prev.layers[-1][0] == sources[0][0] and prev.group == group
                   and kinds[name] not in MERGES
                   and kinds[sources[0][0]] not in (*MERGES, "InputLayer"))
        if chained:
            prev.layers.append((name, kinds[name]))
            node_of[name] = prev
            continue
        node = Node(f"n{len(graph.nodes)}", [(name, kinds[name])], group)
        graph.nodes.append(node)
        node_of[name] = node
        for src, index in sources:
            skip = kinds[name] in MERGES and len(consumers[src]) > 1
            graph.edges.append(Edge(node_of[src].id, node.id, shapes.get((src, index)), skip))
    out = Node(f"n{len(graph.nodes)}", [("output", "")])
    for t in model.outputs:
        src = torch_path(t._keras_history.operation.name)
        graph.edges.append(Edge(node_of[src].id, out.id, shapes.get((src, t._keras_history.tensor_index))))
    graph.nodes.append(out)
    for members in graph.groups().values():
        if len(members) == 1:  # a block of one node needs no box around it
            members[0].boxed = False
    return graph


# ---- text formats -------------------------------------------------------------------------
def _esc(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(graph: Graph) -> str:
    lines = ["flowchart TD"]

    def node(n: Node, indent: str) -> str:
        if n.layers[0][0] == "output" or n.layers[0][1] == "InputLayer":
            return f'{indent}{n.id}(["{_esc(n.layers[0][0])}"])'  # a stadium: where data enters/leaves
        if n.merge:
            return f'{indent}{n.id}(("{_esc(n.label("<br/>"))}"))'  # a circle: add / concatenate
        return f'{indent}{n.id}["{_esc(n.label("<br/>"))}"]'

    for i, (group, nodes) in enumerate(graph.groups().items()):
        if not group:
            lines += [node(n, "  ") for n in nodes]
            continue
        lines.append(f'  subgraph g{i}["{_esc(group)}"]')
        lines += [node(n, "    ") for n in nodes]
        lines.append("  end")
    for e in graph.edges:
        arrow = "-.->" if e.skip else "-->"
        lines.append(f'  {e.src} {arrow}|"{e.label}"| {e.dst}' if e.label else f"  {e.src} {arrow} {e.dst}")
    return "\n".join(lines) + "\n"


def _dq(text: str) -> str:
    """A DOT string; line breaks become DOT's centred `\\n`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Graph) -> str:
    lines = [
        f"digraph {_dq(graph.name)} {{",
        "  rankdir=TB; nodesep=0.3; ranksep=0.35;",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#5b7db1", '
        'fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#444444"];',
    ]

    def node(n: Node, indent: str) -> str:
        if n.layers[0][0] == "output" or n.layers[0][1] == "InputLayer":
            return f'{indent}{n.id} [label={_dq(n.layers[0][0])}, shape=oval, fillcolor="#f3f3f3"];'
        if n.merge:
            return f'{indent}{n.id} [label={_dq(n.label(chr(10)))}, shape=ellipse, fillcolor="#fde9c9"];'
        return f"{indent}{n.id} [label={_dq(n.label(chr(10)))}];"

    for i, (group, nodes) in enumerate(graph.groups().items()):
        if not group:
            lines += [node(n, "  ") for n in nodes]
            continue
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f'    label={_dq(group)}; style="rounded,dashed"; color="#999999"; fontsize=10;')
        lines += [node(n, "    ") for n in nodes]
        lines.append("  }")
    for e in graph.edges:
        attrs = [f"label={_dq(e.label)}"] if e.label else []
        if e.skip:
            attrs += ["style=dashed", 'color="#d0802a"']
        lines.append(f"  {e.src} -> {e.dst}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    return "\n".join(lines) + "\n}\n"


# ---- rendered formats -----------------------------------------------------------------------
GRAPHVIZ_HELP = (
    "rendering {fmt} needs Graphviz's `dot` program, which is not installed (not on PATH). "
    "It comes from the system's package manager: `apt-get install graphviz` (Debian/Ubuntu), "
    "`brew install graphviz` (macOS), `conda install graphviz`. The text formats need nothing: "
    "use --format mermaid or --format dot."
)


def render(dot_text: str, fmt: str) -> bytes:
    """SVG or PNG bytes from DOT text, through the graphviz package and the `dot` program."""
    if shutil.which("dot") is None:
        raise NnzooError(GRAPHVIZ_HELP.format(fmt=fmt))
    try:
        import graphviz
    except ImportError:
        raise NnzooError(f"rendering {fmt} needs the graphviz Python package: "
                         "pip install graphviz (it is in nnzoo's dev extra)") from None
    try:
        return graphviz.Source(dot_text).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise NnzooError(GRAPHVIZ_HELP.format(fmt=fmt)) from None


def diagram(name_or_spec: str | Spec | dict[str, Any], fmt: str = "mermaid",
            **overrides: Any) -> str | bytes:
    """The data-flow diagram of a model: text for mermaid/dot, bytes for svg/png."""
    from nnzoo.errors import SpecError

    if fmt not in FORMATS:
        raise SpecError("format", fmt, f"one of {', '.join(FORMATS)}")
    if fmt in ("svg", "png") and shutil.which("dot") is None:  # before building anything
        raise NnzooError(GRAPHVIZ_HELP.format(fmt=fmt))
    graph = build_graph(name_or_spec, **overrides)
    if fmt == "mermaid":
        return to_mermaid(graph)
    text = to_dot(graph)
    return text if fmt == "dot" else render(text, fmt)
