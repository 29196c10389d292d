"""A branching canvas's definition: named nodes (event selectors) joined by edges into a small acyclic graph.

It comes from a YAML file (`nodes: [{id, select}]`, `edges: [[from, to]]`) or from repeated `ID=SELECTOR` and
`FROM:TO` options; both are checked the same way, and every problem is reported at once with the node it
concerns, before anything reaches the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from engine.analytics.bounds import MOST_CANVAS_BYTES, MOST_CANVAS_EDGES, MOST_CANVAS_NODES
from engine.analytics.errors import AnalyticsError
from engine.analytics.selectors import Selector, parse_selector
from engine.language import graph
from engine.language.errors import did_you_mean

NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # no ':' or '=': they separate the parts of --step and --edge
_EXAMPLE = "nodes: [{id: visit, select: web_visit}, {id: opp, select: opportunity_created}]\nedges: [[visit, opp]]"


@dataclass(frozen=True)
class CanvasNode:
    id: str
    selector: Selector
    layer: int  # the longest way to it from a start node: 0 for start nodes


@dataclass(frozen=True)
class CanvasGraph:
    """Nodes ordered by layer, then as defined; edges ordered by their ends' positions in that order."""

    nodes: tuple[CanvasNode, ...]
    edges: tuple[tuple[str, str], ...]

    def predecessors(self, node: str) -> list[str]:
        return [source for source, target in self.edges if target == node]

    def successors(self, node: str) -> list[str]:
        return [target for source, target in self.edges if source == node]

    def starts_above(self, node: str) -> list[str]:
        """The start nodes from which `node` can be reached (itself, if it is one), in node order."""
        above = graph.reaching([node], {n.id: self.successors(n.id) for n in self.nodes})
        return [n.id for n in self.nodes if n.layer == 0 and n.id in above]


def from_options(steps: list[str], edges: list[str]) -> CanvasGraph:
    """`--step ID=SELECTOR` (repeated) and `--edge FROM:TO` (repeated)."""
    _bound(len(steps), len(edges))
    nodes: list[tuple[str, str]] = []
    for step in steps:
        node, equals, selector = step.partition("=")
        if not equals:
            raise AnalyticsError(
                f"step '{step[:80]}' must be ID=SELECTOR, e.g. lead=\"form_fill where event.form == 'x'\""
            )
        nodes.append((node.strip(), selector.strip()))
    pairs: list[tuple[str, str]] = []
    for edge in edges:
        source, colon, target = edge.partition(":")
        if not colon:
            raise AnalyticsError(f"edge '{edge[:80]}' must be FROM:TO with two node ids, e.g. visit:lead")
        pairs.append((source.strip(), target.strip()))
    return build(nodes, pairs)


def from_yaml(path: Path) -> CanvasGraph:
    """The definition in a YAML file of at most MOST_CANVAS_BYTES bytes."""
    try:
        with path.open("rb") as file:
            raw = file.read(MOST_CANVAS_BYTES + 1)
    except OSError as error:
        raise AnalyticsError(f"cannot read the canvas file {path}: {error.strerror or error}") from None
    if len(raw) > MOST_CANVAS_BYTES:
        raise AnalyticsError(f"{path}: a canvas file may hold at most {MOST_CANVAS_BYTES:,} bytes")
    try:
        document = YAML(typ="safe", pure=True).load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise AnalyticsError(f"{path}: the canvas file is not UTF-8 text") from None
    except YAMLError as error:
        raise AnalyticsError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(document, dict) or set(document) - {"nodes", "edges"} or "nodes" not in document:
        unknown = sorted(str(key) for key in document) if isinstance(document, dict) else []
        extra = [key for key in unknown if key not in ("nodes", "edges")]
        hint = f" (unknown key '{extra[0]}'{did_you_mean(extra[0], ['nodes', 'edges'])})" if extra else ""
        raise AnalyticsError(f"{path}: expected a mapping with 'nodes' and 'edges'{hint}, e.g.\n{_EXAMPLE}")
    nodes_in, edges_in = document["nodes"], document.get("edges") or []
    if not isinstance(nodes_in, list) or not isinstance(edges_in, list):
        raise AnalyticsError(f"{path}: 'nodes' and 'edges' must be lists, e.g.\n{_EXAMPLE}")
    _bound(len(nodes_in), len(edges_in))
    nodes = [_yaml_node(path, number, item) for number, item in enumerate(nodes_in, start=1)]
    pairs = [_yaml_edge(path, number, item) for number, item in enumerate(edges_in, start=1)]
    return build(nodes, pairs)


def _yaml_node(path: Path, number: int, item: Any) -> tuple[str, str]:
    if not isinstance(item, dict) or set(item) != {"id", "select"}:
        raise AnalyticsError(f"{path}: node {number} must be {{id: ..., select: ...}} and nothing else")
    node, selector = item["id"], item["select"]
    if not isinstance(node, str) or not isinstance(selector, str):
        raise AnalyticsError(f"{path}: node {number}: id and select must be text")
    return node, selector


def _yaml_edge(path: Path, number: int, item: Any) -> tuple[str, str]:
    if not (isinstance(item, list) and len(item) == 2 and all(isinstance(end, str) for end in item)):
        raise AnalyticsError(f"{path}: edge {number} must be a pair of node ids, e.g. [visit, lead]")
    return item[0], item[1]


def _bound(nodes: int, edges: int) -> None:
    if not 1 <= nodes <= MOST_CANVAS_NODES:
        raise AnalyticsError(f"a branching canvas has 1 to {MOST_CANVAS_NODES} nodes, not {nodes}")
    if edges > MOST_CANVAS_EDGES:
        raise AnalyticsError(f"a branching canvas has at most {MOST_CANVAS_EDGES} edges, not {edges}")


def build(nodes: list[tuple[str, str]], edges: list[tuple[str, str]]) -> CanvasGraph:
    """The checked graph; an AnalyticsError lists every problem found."""
    _bound(len(nodes), len(edges))
    problems: list[str] = []
    ids = [node for node, _ in nodes]
    selectors: dict[str, Selector] = {}
    for node, text in nodes:
        if not NODE_ID.match(node):
            problems.append(f"node id '{node[:80]}' must be 1-64 letters, digits, '_' or '-'")
        elif node in selectors:
            problems.append(f"node '{node}' is defined twice")
        else:
            try:
                selectors[node] = parse_selector(text)
            except AnalyticsError as error:
                problems.append(f"node '{node}': {error}")
    seen: set[tuple[str, str]] = set()
    for source, target in edges:
        for end in (source, target):
            if end not in ids:
                problems.append(f"edge {source[:80]}:{target[:80]}: unknown node '{end[:80]}'{did_you_mean(end, ids)}")
        if (source, target) in seen:
            problems.append(f"edge {source}:{target} is given twice")
        seen.add((source, target))
    if problems:
        raise AnalyticsError("; ".join(problems))
    successors: dict[str, list[str]] = {node: [] for node in ids}
    for source, target in seen:
        successors[source].append(target)
    for component in graph.strongly_connected(ids, successors):
        if graph.is_loop(component, successors):
            cycle = " -> ".join(graph.loop_path(component, successors))
            problems.append(f"the edges form a cycle ({cycle}): a canvas goes forward only, remove one of them")
    if problems:
        raise AnalyticsError("; ".join(problems))
    layer = _layers(ids, successors)
    order = sorted(range(len(ids)), key=lambda index: (layer[ids[index]], index))
    position = {ids[index]: rank for rank, index in enumerate(order)}
    return CanvasGraph(
        nodes=tuple(CanvasNode(ids[index], selectors[ids[index]], layer[ids[index]]) for index in order),
        edges=tuple(sorted(seen, key=lambda edge: (position[edge[0]], position[edge[1]]))),
    )


def _layers(ids: list[str], successors: dict[str, list[str]]) -> dict[str, int]:
    """Longest way from a start node (no incoming edge) to each node; the graph is acyclic by now."""
    incoming = {node: 0 for node in ids}
    for targets in successors.values():
        for target in targets:
            incoming[target] += 1
    layer = dict.fromkeys(ids, 0)
    ready = [node for node in ids if incoming[node] == 0]
    while ready:
        node = ready.pop()
        for target in successors[node]:
            layer[target] = max(layer[target], layer[node] + 1)
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    return layer
