"""YAML text -> plain data plus a source map giving the line and column of every key and value.

The C composer of ruamel.yaml builds the node tree (fast enough for 2,000-node journeys); this module
turns it into dicts, lists and scalars and remembers where each came from. No journey semantics here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.language.errors import Issue

PathKey = tuple[str | int, ...]
_STR = "tag:yaml.org,2002:str"


@dataclass
class SourceMap:
    """1-based (line, column) of values and mapping keys, addressed by their path in the data."""

    path: str
    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def value(self, at: PathKey) -> tuple[int, int]:
        """Where the value at `at` starts; falls back to the nearest enclosing value that exists."""
        for depth in range(len(at), -1, -1):
            found = self.values.get(at[:depth])
            if found is not None:
                return found
        return (1, 1)

    def key(self, at: PathKey) -> tuple[int, int]:
        """Where the key naming `at` starts (for 'unknown key' problems); else where its value starts."""
        return self.keys.get(at) or self.value(at)


@dataclass
class Document:
    path: str
    data: Any
    source: SourceMap


def _yaml() -> YAML:
    return YAML(typ="safe", pure=False)


def load_text(text: str, path: str) -> tuple[Document | None, list[Issue]]:
    """Parse `text`; on a syntax error return no document and the error as an issue."""
    yaml = _yaml()
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = error.problem or error.context or "cannot be parsed"
        return None, [Issue(path, line, col, f"invalid yaml: {problem}")]
    source = SourceMap(path)
    issues: list[Issue] = []
    data = None if root is None else _convert(root, (), source, issues, yaml)
    return Document(path, data, source), issues


def load_file(path: Path, shown_as: str | None = None) -> tuple[Document | None, list[Issue]]:
    name = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        return None, [Issue(name, 1, 1, f"file is not utf-8 text: {error.reason}")]
    except OSError as error:
        return None, [Issue(name, 1, 1, f"cannot read file: {error.strerror}")]
    return load_text(text, name)


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _convert(node: Node, at: PathKey, source: SourceMap, issues: list[Issue], yaml: YAML) -> Any:
    source.values[at] = _position(node)
    if isinstance(node, MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _convert_scalar(key_node, yaml)
            name = str(key) if key is not None else ""
            if name in result:
                line, col = _position(key_node)
                issues.append(Issue(source.path, line, col, f"duplicate key '{name}'"))
                continue
            source.keys[(*at, name)] = _position(key_node)
            result[name] = _convert(value_node, (*at, name), source, issues, yaml)
        return result
    if isinstance(node, SequenceNode):
        return [_convert(item, (*at, index), source, issues, yaml) for index, item in enumerate(node.value)]
    return _convert_scalar(node, yaml)


def _convert_scalar(node: Node, yaml: YAML) -> Any:
    if isinstance(node, ScalarNode):
        if node.tag == _STR:  # by far the most common; the constructor's bookkeeping is not needed
            return node.value
        return yaml.constructor.construct_object(node, deep=True)
    # A mapping or list used as a key: keep its text so the problem can still be reported.
    return str(yaml.constructor.construct_object(node, deep=True))
