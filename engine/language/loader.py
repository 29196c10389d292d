"""YAML text -> plain data plus a source map giving the line and column of every key and value.

ruamel.yaml's C parser turns the text into events; this module composes them itself, in one loop
without recursion, so a hostile file is refused at the event where it crosses a limit below: aliases
that would expand to billions of values, 50,000 nested brackets (which crash the C composer), tags
that ask for Python objects. No journey semantics here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from ruamel.yaml.nodes import ScalarNode

from engine.language.errors import Issue

PathKey = tuple[str | int, ...]

MAX_FILE_SIZE = 2_000_000  # bytes (characters for text given directly); a 2,000-node journey is ~330 KB
MAX_DEPTH = 50  # lists and mappings inside each other; a journey needs about 6
MAX_VALUES = 200_000  # keys and values once aliases are expanded; a 2,000-node journey has ~26,500
MAX_INT = 2**63 - 1  # what databases and JSON tools hold as a whole number

_CORE = "tag:yaml.org,2002:"
_STR, _INT, _MERGE = _CORE + "str", _CORE + "int", _CORE + "merge"
_SCALAR_TAGS = frozenset(_CORE + name for name in ("str", "int", "float", "bool", "null", "timestamp"))
_SEQ, _MAP = _CORE + "seq", _CORE + "map"
_WHAT = {"int": "a whole number", "float": "a number", "bool": "true or false", "null": "null", "timestamp": "a date"}
# What YAML allows in a file (its 'printable' set); anything else is refused with its position.
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


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


def load_text(text: str, path: str) -> tuple[Document | None, list[Issue]]:
    """Parse `text`; when it cannot be read as data, return no document and every reason found."""
    if len(text) > MAX_FILE_SIZE:
        return None, [Issue(path, 1, 1, _too_large(f"{len(text):,} characters, at most {MAX_FILE_SIZE:,}"))]
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        line, col = _line_col(text, bad.start())
        message = f"invalid yaml: character U+{ord(bad.group()):04X} is not allowed in a YAML file: remove it"
        return None, [Issue(path, line, col, message)]
    composer = _Composer(path)
    try:
        root = composer.compose(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = error.problem or error.context or "cannot be parsed"
        return None, [*composer.issues, Issue(path, line, col, f"invalid yaml: {problem}")]
    except _RefusedError as error:
        return None, [*composer.issues, error.issue]
    except YAMLError as error:  # the reader's own checks; the scan above should have caught them first
        return None, [Issue(path, 1, 1, f"invalid yaml: {error}".splitlines()[0])]
    converter = _Converter(SourceMap(path))
    data = None if root is None else converter.convert(root, ())
    unreadable = composer.issues + converter.unreadable
    if unreadable:
        return None, sorted(unreadable + converter.duplicates)
    return Document(path, data, converter.source), converter.duplicates


def load_file(path: Path, shown_as: str | None = None) -> tuple[Document | None, list[Issue]]:
    name = shown_as or str(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_SIZE + 1)  # never more: the path may name a device that never ends
    except OSError as error:
        return None, [Issue(name, 1, 1, f"cannot read file: {error.strerror}")]
    if len(raw) > MAX_FILE_SIZE:
        return None, [Issue(name, 1, 1, _too_large(f"over {MAX_FILE_SIZE:,} bytes"))]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        return None, [Issue(name, line, 1, f"file is not utf-8 text: {error.reason}")]
    return load_text(text.replace("\r\n", "\n").replace("\r", "\n"), name)  # as Path.read_text does


def _too_large(size: str) -> str:
    return f"file is too large ({size}): split it into smaller journeys"


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _shown_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def _quoted(text: str) -> str:
    """'text' in quotes, cut short when long: a message must stay one readable line."""
    return f"'{text}'" if len(text) <= 40 else f"'{text[:20]}...{text[-8:]}' ({len(text):,} characters)"


class _RefusedError(Exception):
    """The file crosses a limit: composing stops at once, so its cost stays bounded."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.render())
        self.issue = issue


# --- composing: events -> a tree of nodes, bounded -------------------------------------------------


@dataclass(slots=True)
class _Node:
    tag: str
    line: int
    col: int


@dataclass(slots=True)
class _Scalar(_Node):
    text: str
    explicit: bool = False  # the tag was written in the file, not resolved from the text


@dataclass(slots=True)
class _Sequence(_Node):
    items: list[_Node] = field(default_factory=list)


@dataclass(slots=True)
class _Mapping(_Node):
    pairs: list[tuple[_Node, _Node]] = field(default_factory=list)
    key: _Node | None = None  # while composing: a key waiting for its value


@dataclass(slots=True)
class _Open:
    node: _Sequence | _Mapping
    anchor: str | None
    values_before: int
    height: int = 0  # of the deepest child so far


@dataclass(slots=True)
class _Anchor:
    node: _Node
    size: int | None = None  # values once expanded; None while its collection is still open
    height: int = 1


class _Composer:
    """Builds the node tree the way a YAML composer does, but counts as it goes: nesting depth and the
    number of values once aliases are expanded (an alias adds the size of what it names without being
    expanded here), and refuses an alias inside the value it names (which would never end)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.issues: list[Issue] = []  # refused tags: reported together, after composing
        self.anchors: dict[str, _Anchor] = {}
        self.stack: list[_Open] = []
        self.values = 0
        self.documents = 0

    def compose(self, text: str) -> _Node | None:
        loader, _ = YAML(typ="safe", pure=False).get_constructor_parser(text)
        self.implicit: dict[Any, list[tuple[str, re.Pattern[str]]]] = loader.versioned_resolver
        root: _Node | None = None
        try:
            while True:
                event = loader.get_event()
                if isinstance(event, StreamEndEvent):
                    return root
                if isinstance(event, DocumentStartEvent):
                    self.documents += 1
                    if self.documents > 1:
                        self._refuse(event, "invalid yaml: found a second document ('---'): one journey per file")
                node = self._node(event)
                if node is not None:
                    if self.stack:
                        self._add(node)
                    else:
                        root = node
        finally:
            loader.dispose()

    def _node(self, event: Event) -> _Node | None:
        """The node that `event` completes, if any; opening a collection completes nothing yet."""
        line, col = event.start_mark.line + 1, event.start_mark.column + 1
        if isinstance(event, ScalarEvent):
            self._count(event, 1, 1)
            tag = self._scalar_tag(event)
            scalar = _Scalar(tag, line, col, event.value, str(event.ctag) == tag)
            if event.anchor is not None:
                self.anchors[event.anchor] = _Anchor(scalar, 1, 1)
            return scalar
        if isinstance(event, CollectionStartEvent):
            if len(self.stack) >= MAX_DEPTH:
                self._refuse(event, f"nested more than {MAX_DEPTH} levels deep: a journey needs only a few levels")
            self._count(event, 1, 1)
            sequence = isinstance(event, SequenceStartEvent)
            tag = self._collection_tag(event, _SEQ if sequence else _MAP)
            collection = _Sequence(tag, line, col) if sequence else _Mapping(tag, line, col)
            if event.anchor is not None:
                self.anchors[event.anchor] = _Anchor(collection)
            self.stack.append(_Open(collection, event.anchor, self.values - 1))
            return None
        if isinstance(event, AliasEvent):
            return self._alias(event)
        if isinstance(event, CollectionEndEvent):
            opened = self.stack.pop()
            height = opened.height + 1
            if self.stack:
                self.stack[-1].height = max(self.stack[-1].height, height)
            if opened.anchor is not None and self.anchors[opened.anchor].node is opened.node:
                self.anchors[opened.anchor].size = self.values - opened.values_before
                self.anchors[opened.anchor].height = height
            return opened.node
        return None  # stream and document boundaries

    def _alias(self, event: AliasEvent) -> _Node:
        name = event.anchor
        anchored = self.anchors.get(name)
        if anchored is None:
            self._refuse(event, f"invalid yaml: unknown alias '*{name}': define it first with '&{name}'")
        if anchored.size is None:
            self._refuse(event, f"alias '*{name}' is used inside the value it names: it would never end")
        if len(self.stack) + anchored.height > MAX_DEPTH:
            self._refuse(event, f"alias '*{name}' nests values more than {MAX_DEPTH} levels deep")
        self._count(event, anchored.size, anchored.height)
        return anchored.node

    def _count(self, event: Event, size: int, height: int) -> None:
        self.values += size
        if self.values > MAX_VALUES:
            what = f"alias '*{event.anchor}' makes" if isinstance(event, AliasEvent) else "the file has"
            self._refuse(event, f"{what} more than {MAX_VALUES:,} values: split the file or use fewer aliases")
        if self.stack:
            self.stack[-1].height = max(self.stack[-1].height, height)

    def _add(self, node: _Node) -> None:
        parent = self.stack[-1].node
        if isinstance(parent, _Sequence):
            parent.items.append(node)
        elif parent.key is None:
            parent.key = node
        else:
            parent.pairs.append((parent.key, node))
            parent.key = None

    def _scalar_tag(self, event: ScalarEvent) -> str:
        tag = None if event.ctag is None else str(event.ctag)
        if tag not in (None, "!"):
            if tag in _SCALAR_TAGS:
                return str(tag)
            self._tag_issue(event, str(tag))
        if not event.implicit[0]:  # quoted, or a refused tag: text
            return _STR
        value = event.value
        for resolved, pattern in self.implicit.get(value[:1], []) + self.implicit.get(None, []):
            if pattern.match(value):
                # '<<' stays a merge key (refused as a key later); '=' and '!'-like words are text here
                return resolved if resolved in _SCALAR_TAGS or resolved == _MERGE else _STR
        return _STR

    def _collection_tag(self, event: Event, default: str) -> str:
        tag = event.ctag  # type: ignore[attr-defined]
        if tag is not None and str(tag) not in ("!", default):
            self._tag_issue(event, str(tag))
        return default

    def _tag_issue(self, event: Event, tag: str) -> None:
        line, col = event.start_mark.line + 1, event.start_mark.column + 1
        self.issues.append(Issue(self.path, line, col, f"tag '{_shown_tag(tag)}' is not allowed: remove it"))

    def _refuse(self, event: Event, message: str) -> NoReturn:
        mark = event.start_mark
        raise _RefusedError(Issue(self.path, mark.line + 1, mark.column + 1, message))


# --- converting: nodes -> dicts, lists and scalars with their positions ------------------------------


class _Converter:
    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.duplicates: list[Issue] = []  # the first value wins; the journey can still be checked
        self.unreadable: list[Issue] = []  # the file cannot be read as data: no document
        self.constructor = YAML(typ="safe", pure=True).constructor

    def convert(self, node: _Node, at: PathKey) -> Any:
        self.source.values[at] = (node.line, node.col)
        if isinstance(node, _Mapping):
            result: dict[str, Any] = {}
            for key_node, value_node in node.pairs:
                name = self._key(key_node)
                if name is None:
                    continue
                if name in result:
                    self.duplicates.append(self._issue(key_node, f"duplicate key '{name}'"))
                    continue
                self.source.keys[(*at, name)] = (key_node.line, key_node.col)
                result[name] = self.convert(value_node, (*at, name))
            return result
        if isinstance(node, _Sequence):
            return [self.convert(item, (*at, index)) for index, item in enumerate(node.items)]
        assert isinstance(node, _Scalar)
        return self._scalar(node)

    def _key(self, node: _Node) -> str | None:
        """A key is a name: its text as written ('1', 'true'), never a list or a mapping."""
        if not isinstance(node, _Scalar):
            kind = "a list" if isinstance(node, _Sequence) else "a mapping"
            self.unreadable.append(self._issue(node, f"a key must be a name, not {kind}"))
            return None
        if node.tag == _MERGE:
            self.unreadable.append(self._issue(node, "merge keys ('<<') are not supported: write the keys out"))
            return None
        if "\x00" in node.text:
            self.unreadable.append(self._issue(node, "a key contains a NUL character ('\\0'): remove it"))
            return None
        return node.text

    def _scalar(self, node: _Scalar) -> Any:
        if node.tag in (_STR, _MERGE):
            if "\x00" in node.text:
                self.unreadable.append(self._issue(node, "text contains a NUL character ('\\0'): remove it"))
            return node.text
        if node.tag == _INT and len(node.text.lstrip("+-0")) > 24:  # before int() spends quadratic time on it
            return self._too_large(node)
        try:
            value = self.constructor.construct_object(ScalarNode(node.tag, node.text, None, None))
        except (YAMLError, ValueError, ArithmeticError, LookupError, TypeError):
            what = _WHAT[node.tag.removeprefix(_CORE)]
            hint = f"remove the tag '{_shown_tag(node.tag)}'" if node.explicit else "put it in quotes if it is text"
            self.unreadable.append(self._issue(node, f"{_quoted(node.text)} cannot be read as {what}: {hint}"))
            return None
        if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT - 1 <= value <= MAX_INT:
            return self._too_large(node)
        return value

    def _too_large(self, node: _Scalar) -> None:
        message = f"number {_quoted(node.text)} is too large: whole numbers go up to {MAX_INT:,}"
        self.unreadable.append(self._issue(node, message))

    def _issue(self, node: _Node, message: str) -> Issue:
        return Issue(self.source.path, node.line, node.col, message)
