"""YAML text -> plain data plus a source map giving the line and column of every key and value.

ruamel.yaml's C parser turns the text into events; this module composes them itself, in one pass that
builds the data and its positions together (recursing only to replay an alias, never deeper than the
nesting limit), so a hostile file is refused at the event where it crosses a limit below: aliases that
would expand to billions of values, 50,000 nested brackets (which crash the C composer), tags that ask
for Python objects. No journey semantics here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
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
        composer.compose(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = error.problem or error.context or "cannot be parsed"
        return None, [*composer.issues, Issue(path, line, col, f"invalid yaml: {problem}")]
    except _RefusedError as error:
        return None, [*composer.issues, error.issue]
    except YAMLError as error:  # the reader's own checks; the scan above should have caught them first
        return None, [Issue(path, 1, 1, f"invalid yaml: {error}".splitlines()[0])]
    unreadable = composer.issues + composer.unreadable
    if unreadable:
        return None, sorted(unreadable + composer.duplicates)
    return Document(path, composer.data, composer.source), composer.duplicates


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


# --- composing: events -> data and the positions of its values, in one pass, bounded ----------------

# What composing makes of each event (and keeps of those inside an anchored value, for an alias to replay):
# (_SCALAR, line, col, tag, text, explicit), (_MAPPING or _SEQUENCE, line, col), (_END,) or
# (_ALIAS, line, col, first, last): the items of the named value, by index.
_SCALAR, _MAPPING, _SEQUENCE, _END, _ALIAS = range(5)
_END_ITEM = (_END,)
_Item = tuple[Any, ...]


@dataclass(slots=True)
class _Open:
    """A collection whose events are still coming: what the limits need to know about it."""

    first: int  # where its items start in `items` (kept only when it is anchored)
    anchor: str | None
    values_before: int
    height: int = 0  # of the deepest child so far


@dataclass(slots=True)
class _Anchor:
    first: int
    last: int | None = None  # None while its collection is still open
    size: int = 1  # values once expanded
    height: int = 1


@dataclass(slots=True)
class _Filling:
    """A list or mapping of the data being filled; no data: a value being skipped (a refused key's value)."""

    data: dict[str, Any] | list[Any] | None
    at: PathKey
    key: str | None = None  # a mapping's key waiting for its value
    skip: int = 0  # values of a mapping still to skip: the value after a refused or duplicate key


_SKIPPED = _Filling(None, ())


class _Composer:
    """Builds the data the way a YAML composer and constructor do, but counts as it goes: nesting depth and
    the number of values once aliases are expanded (an alias adds the size of what it names before it is
    replayed), and refuses an alias inside the value it names (which would never end)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.issues: list[Issue] = []  # refused tags: reported together, after composing
        self.duplicates: list[Issue] = []  # the first value wins; the journey can still be checked
        self.unreadable: list[Issue] = []  # the file cannot be read as data: no document
        self.source = SourceMap(path)
        self.data: Any = None
        self.items: list[_Item] = []  # only those of anchored values: all that an alias may replay
        self.recording = 0  # anchored collections open: while there are, items are kept
        self.anchors: dict[str, _Anchor] = {}
        self.open: list[_Open] = []
        self.filling: list[_Filling] = []
        self.values = 0
        self.documents = 0
        self.resolved: dict[str, str] = {}  # plain text -> its tag: keys such as 'id' and 'next' repeat
        self.constructed: dict[tuple[str, str], Any] = {}  # (tag, text) -> its value: 'true', '100' repeat
        self.constructor = YAML(typ="safe", pure=True).constructor

    def compose(self, text: str) -> None:
        loader, _ = YAML(typ="safe", pure=False).get_constructor_parser(text)
        self.implicit: dict[Any, list[tuple[str, re.Pattern[str]]]] = loader.versioned_resolver
        steps: dict[type[Event], Callable[[Any], _Item]] = {  # the C parser makes events of exactly these classes
            ScalarEvent: self._scalar,
            MappingStartEvent: self._start,
            SequenceStartEvent: self._start,
            MappingEndEvent: self._end,
            SequenceEndEvent: self._end,
            AliasEvent: self._alias,
        }
        next_event, fill = loader.get_event, self._fill  # looked up once: ~40,000 events
        try:
            while True:
                event = next_event()
                step = steps.get(type(event))
                if step is None:
                    if isinstance(event, StreamEndEvent):
                        return
                    if isinstance(event, DocumentStartEvent):
                        self.documents += 1
                        if self.documents > 1:
                            self._refuse(event, "invalid yaml: found a second document ('---'): one journey per file")
                    continue  # stream and document boundaries
                fill(step(event))
        finally:
            loader.dispose()

    # Each event is first counted and checked against the limits, then put into the data.

    def _scalar(self, event: ScalarEvent) -> _Item:
        self._count(event, 1, 1)
        tag, explicit = self._scalar_tag(event)
        mark = event.start_mark
        item = (_SCALAR, mark.line + 1, mark.column + 1, tag, event.value, explicit)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(len(self.items), len(self.items))
            self.items.append(item)
        elif self.recording:
            self.items.append(item)
        return item

    def _start(self, event: CollectionStartEvent) -> _Item:
        if len(self.open) >= MAX_DEPTH:
            self._refuse(event, f"nested more than {MAX_DEPTH} levels deep: a journey needs only a few levels")
        self._count(event, 1, 1)
        sequence = isinstance(event, SequenceStartEvent)
        self._collection_tag(event, _SEQ if sequence else _MAP)
        first = len(self.items)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(first)
            self.recording += 1
        self.open.append(_Open(first, event.anchor, self.values - 1))
        mark = event.start_mark
        item = (_SEQUENCE if sequence else _MAPPING, mark.line + 1, mark.column + 1)
        if self.recording:
            self.items.append(item)
        return item

    def _end(self, _: CollectionEndEvent) -> _Item:
        opened = self.open.pop()
        height = opened.height + 1
        if self.open and self.open[-1].height < height:
            self.open[-1].height = height
        if self.recording:
            self.items.append(_END_ITEM)
        if opened.anchor is not None:
            self.recording -= 1
            anchored = self.anchors[opened.anchor]
            if anchored.first == opened.first:  # not named again inside itself
                anchored.last, anchored.height = len(self.items) - 1, height
                anchored.size = self.values - opened.values_before
        return _END_ITEM

    def _alias(self, event: AliasEvent) -> _Item:
        name = event.anchor
        anchored = self.anchors.get(name)
        if anchored is None:
            self._refuse(event, f"invalid yaml: unknown alias '*{name}': define it first with '&{name}'")
        if anchored.last is None:
            self._refuse(event, f"alias '*{name}' is used inside the value it names: it would never end")
        if len(self.open) + anchored.height > MAX_DEPTH:
            self._refuse(event, f"alias '*{name}' nests values more than {MAX_DEPTH} levels deep")
        self._count(event, anchored.size, anchored.height)
        mark = event.start_mark
        item = (_ALIAS, mark.line + 1, mark.column + 1, anchored.first, anchored.last)
        if self.recording:
            self.items.append(item)
        return item

    def _count(self, event: Event, size: int, height: int) -> None:
        self.values += size
        if self.values > MAX_VALUES:
            what = f"alias '*{event.anchor}' makes" if isinstance(event, AliasEvent) else "the file has"
            self._refuse(event, f"{what} more than {MAX_VALUES:,} values: split the file or use fewer aliases")
        if self.open and self.open[-1].height < height:
            self.open[-1].height = height

    def _scalar_tag(self, event: ScalarEvent) -> tuple[str, bool]:
        """The scalar's tag, and whether the file gave it (rather than it being resolved from the text)."""
        if event.ctag is not None:
            tag = str(event.ctag)
            if tag != "!":
                if tag in _SCALAR_TAGS:
                    return tag, True
                self._tag_issue(event, tag)
        if not event.implicit[0]:  # quoted, or a refused tag: text
            return _STR, False
        value = event.value
        resolved = self.resolved.get(value)
        if resolved is None:
            resolved = self.resolved[value] = self._resolve(value)
        return resolved, False

    def _resolve(self, value: str) -> str:
        for resolved, pattern in self.implicit.get(value[:1], []) + self.implicit.get(None, []):
            if pattern.match(value):
                # '<<' stays a merge key (refused as a key later); '=' and '!'-like words are text here
                return resolved if resolved in _SCALAR_TAGS or resolved == _MERGE else _STR
        return _STR

    def _collection_tag(self, event: Event, default: str) -> None:
        tag = event.ctag  # type: ignore[attr-defined]
        if tag is not None and str(tag) not in ("!", default):
            self._tag_issue(event, str(tag))

    def _tag_issue(self, event: Event, tag: str) -> None:
        line, col = event.start_mark.line + 1, event.start_mark.column + 1
        self.issues.append(Issue(self.path, line, col, f"tag '{_shown_tag(tag)}' is not allowed: remove it"))

    def _refuse(self, event: Event, message: str) -> NoReturn:
        mark = event.start_mark
        raise _RefusedError(Issue(self.path, mark.line + 1, mark.column + 1, message))

    # --- filling: items -> dicts, lists and scalars, with the position of every value and key ----------

    def _fill(self, item: _Item) -> None:
        """Put one item where it belongs: a value into the list or mapping being filled, or close it."""
        kind = item[0]
        if kind == _END:
            self.filling.pop()
            return
        if not self.filling:
            self.data = self._value(item, ())
            return
        parent = self.filling[-1]
        data = parent.data
        if data is None or parent.skip:  # inside a skipped value, or the value after a refused key
            if parent.skip:
                parent.skip -= 1
            if kind in (_MAPPING, _SEQUENCE):
                self.filling.append(_SKIPPED)  # only to know where the skipped value ends
        elif isinstance(data, list):
            data.append(self._value(item, (*parent.at, len(data))))
        elif parent.key is None:
            self._key(item, parent, data)
        else:
            name, parent.key = parent.key, None
            data[name] = self._value(item, (*parent.at, name))

    def _value(self, item: _Item, at: PathKey) -> Any:
        kind = item[0]
        if kind == _ALIAS:  # the value it names, again, with that value's positions
            first, last = item[3], item[4]
            value = self._value(self.items[first], at)
            for index in range(first + 1, last + 1):
                self._fill(self.items[index])
            return value
        self.source.values[at] = (item[1], item[2])
        if kind == _SCALAR:
            text = item[4]
            if item[3] == _STR and "\x00" not in text:  # most values: plain text, as written
                return text
            return self._scalar_value(item)
        data: dict[str, Any] | list[Any] = {} if kind == _MAPPING else []
        self.filling.append(_Filling(data, at))
        return data

    def _key(self, item: _Item, parent: _Filling, data: dict[str, Any]) -> None:
        """A key is a name: its text as written ('1', 'true'), never a list or a mapping."""
        parent.skip = 1  # unless the key is taken below
        named = self.items[item[3]] if item[0] == _ALIAS else item
        if named[0] != _SCALAR:
            kind = "a list" if named[0] == _SEQUENCE else "a mapping"
            self._unreadable(named, f"a key must be a name, not {kind}")
            if item[0] != _ALIAS:
                self.filling.append(_SKIPPED)  # the key's own items
            return
        _, line, col, tag, text, _ = named
        if tag == _MERGE:
            self._unreadable(named, "merge keys ('<<') are not supported: write the keys out")
        elif "\x00" in text:
            self._unreadable(named, "a key contains a NUL character ('\\0'): remove it")
        elif text in data:
            self.duplicates.append(Issue(self.path, line, col, f"duplicate key '{text}'"))
        else:
            self.source.keys[(*parent.at, text)] = (line, col)
            parent.key, parent.skip = text, 0

    def _scalar_value(self, item: _Item) -> Any:
        _, _, _, tag, text, explicit = item
        if tag in (_STR, _MERGE):
            if "\x00" in text:
                self._unreadable(item, "text contains a NUL character ('\\0'): remove it")
            return text
        if (tag, text) in self.constructed:
            return self.constructed[tag, text]
        if tag == _INT and len(text.lstrip("+-0")) > 24:  # before int() spends quadratic time on it
            return self._too_large(item)
        try:
            value = self.constructor.construct_object(ScalarNode(tag, text, None, None))
        except (YAMLError, ValueError, ArithmeticError, LookupError, TypeError):
            what = _WHAT[tag.removeprefix(_CORE)]
            hint = f"remove the tag '{_shown_tag(tag)}'" if explicit else "put it in quotes if it is text"
            self._unreadable(item, f"{_quoted(text)} cannot be read as {what}: {hint}")
            return None
        if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT - 1 <= value <= MAX_INT:
            return self._too_large(item)
        self.constructed[tag, text] = value
        return value

    def _too_large(self, item: _Item) -> None:
        self._unreadable(item, f"number {_quoted(item[4])} is too large: whole numbers go up to {MAX_INT:,}")

    def _unreadable(self, item: _Item, message: str) -> None:
        self.unreadable.append(Issue(self.path, item[1], item[2], message))
