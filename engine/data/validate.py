"""A row of a file (or an item of an HTTP batch) -> a typed Record, or every problem it has.

Columns are first mapped to fields: renamed by `--map src=dst`, known fields parsed by their type
(engine/data/fields.py), unknown ones kept in `attributes` (refused in strict mode). A Record carries only what
was given, so an upsert changes just those fields: an empty CSV cell leaves a field as it is, a JSON null (or
"") clears it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.data.fields import ATTRIBUTE_NAME, ENGINE_OWNED, FIELDS, KEY, SINGULAR, FieldError, FieldSpec, Kind
from engine.data.problem import Problem

_INT = re.compile(r"-?(?:0|[1-9]\d{0,17})")
_FLOAT = re.compile(r"-?(?:0|[1-9]\d*)\.\d+")


@dataclass(frozen=True)
class Options:
    strict: bool = False  # unknown columns are refused instead of kept in attributes
    rename: Mapping[str, str] = field(default_factory=dict)  # source column -> field or attribute name


@dataclass(slots=True)
class Record:
    """What one row says about one record: the fields given (typed; None clears one) and the attributes given
    (None removes one). `key` is the account id, the email (lower case) or the opportunity id; None only for a
    person without an email, who is matched by account and name (the demo data has such people)."""

    kind: Kind
    key: str | None
    values: dict[str, Any]
    attributes: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


@dataclass
class Columns:
    """How the columns of a file (or the keys of a JSON object) map to fields and attributes."""

    fields: dict[str, FieldSpec] = field(default_factory=dict)  # source column -> field
    attributes: dict[str, str] = field(default_factory=dict)  # source column -> attribute name
    whole: str | None = None  # a source column holding an `attributes` object
    key_columns: frozenset[str] = frozenset()  # the key field, and the source column that gives it
    steps: tuple[tuple[str, FieldSpec, str, Callable[[Any], Any]], ...] = ()  # (source, spec, name, parse)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # worth saying, not wrong (an unknown column near a field)


def parse_map(text: str) -> tuple[str, str]:
    """'Company Name=name' -> ('Company Name', 'name'); ValueError says what the option should look like."""
    source, equals, target = text.partition("=")
    if not equals or not source.strip() or not target.strip():
        raise ValueError(f"--map '{text}': expected SOURCE=FIELD, e.g. --map 'Company Name=name'")
    return source.strip(), target.strip()


def plan_columns(
    kind: Kind, names: Sequence[str], options: Options, line: int | None, *, header: bool = True
) -> Columns:
    """The mapping of these column names, with the problems of the names themselves (a header's, or a JSON
    object's keys when `header` is False: a missing key is then the row's problem, checked in `record`)."""
    columns = Columns()
    problems = columns.problems
    known, owned = FIELDS[kind], ENGINE_OWNED[kind]
    seen: dict[str, int] = {}
    targets: dict[str, str] = {}
    for position, name in enumerate(names, start=1):
        if not name:
            problems.append(Problem(line, f"column {position} has no name: name it in the header row or remove it"))
            continue
        if name in seen:
            problems.append(Problem(line, f"appears twice (columns {seen[name]} and {position})", name))
            continue
        seen[name] = position
        target = options.rename.get(name, name)
        if target in targets:
            problems.append(
                Problem(line, f"columns '{targets[target]}' and '{name}' both give '{target}': keep one", name)
            )
            continue
        targets[target] = name
        if target in known:
            columns.fields[name] = known[target]
        elif target == "attributes":
            columns.whole = name
        elif target in owned:
            problems.append(Problem(line, owned[target], name))
        elif options.strict:
            problems.append(
                Problem(
                    line,
                    f"not a field of {kind}{_near(target, known)}: remove it, rename it with --map '{name}=FIELD', "
                    "or import without --strict to keep it in attributes",
                    name,
                )
            )
        elif not ATTRIBUTE_NAME.fullmatch(target):
            problems.append(
                Problem(
                    line,
                    f"not a field of {kind}{_near(target, known)}, and not usable as an attribute name (letters, "
                    f"digits and '_', starting with a letter): rename it, e.g. --map '{name}={_attribute_like(name)}'",
                    name,
                )
            )
        else:
            columns.attributes[name] = target
            if near := _near(target, known):
                columns.notes.append(
                    Problem(line, f"not a field of {kind}: kept as the attribute '{target}'{near}", name)
                )
    columns.key_columns = frozenset({KEY[kind], *(s for s, spec in columns.fields.items() if spec.name == KEY[kind])})
    columns.steps = tuple((source, spec, spec.name, spec.parse) for source, spec in columns.fields.items())
    if header and KEY[kind] not in targets:
        problems.append(Problem(line, _missing_key(kind, column=True), KEY[kind]))
    return columns


def check_renames(options: Options, names: Iterable[str], line: int | None) -> list[Problem]:
    """A `--map` whose source the file does not have (a typo would otherwise silently rename nothing)."""
    present = set(names)
    return [
        Problem(line, f"--map '{source}={target}': the file has no column '{source}'{_near(source, present, 0.6)}")
        for source, target in options.rename.items()
        if source not in present
    ]


def record(
    kind: Kind, columns: Columns, values: Mapping[str, Any], line: int | None, *, text: bool
) -> Record | list[Problem]:
    """The typed record, or every problem of the row. `text` is True for CSV: all values are text and an empty
    cell means "not given"; from JSON, null or "" clears a field. (Written for speed: it runs once a row.)"""
    problems: list[Problem] = []
    typed: dict[str, Any] = {}
    if text:  # CSV: every column is there, as text; an empty cell is not given
        for source, _, name, parse in columns.steps:
            raw = values[source]
            if raw and not raw.isspace():
                try:
                    typed[name] = parse(raw)
                except FieldError as error:
                    problems.append(Problem(line, str(error), source))
    else:
        for source, spec, name, parse in columns.steps:
            raw = values.get(source, _ABSENT)
            if raw is _ABSENT:
                continue
            if raw is None or (raw.__class__ is str and (not raw or raw.isspace())):
                _clear(kind, spec, source, line, typed, problems)
                continue
            try:
                typed[name] = parse(raw)
            except FieldError as error:
                problems.append(Problem(line, str(error), source))
    attributes: dict[str, Any] = {}
    for source, name in columns.attributes.items():
        value = values.get(source, _ABSENT)
        if value is _ABSENT:
            continue
        if text:
            value = value.strip()
            if value:
                attributes[name] = _inferred(value)
        else:
            attributes[name] = None if value == "" else value
    if columns.whole is not None and columns.whole in values:
        problems += _whole(kind, values[columns.whole], attributes, line, columns.whole, text)
    key = typed.get(KEY[kind])
    if key is None and not any(problem.column in columns.key_columns for problem in problems):
        problems.append(Problem(line, _missing_key(kind), KEY[kind]))
    if problems:
        return problems
    return Record(kind, key, typed, attributes, line)


_ABSENT = object()


def _clear(
    kind: Kind, spec: FieldSpec, source: str, line: int | None, typed: dict[str, Any], problems: list[Problem]
) -> None:
    """A JSON null or "": the field is cleared, if it may be."""
    noun = SINGULAR[kind]
    if spec.name == KEY[kind]:
        problems.append(Problem(line, _missing_key(kind), source))
    elif spec.name == "account_id":
        problems.append(Problem(line, f"cannot be emptied: every {noun} belongs to an account", source))
    elif spec.type == "true/false":
        problems.append(Problem(line, "cannot be emptied: give true or false", source))
    elif not spec.clearable:
        problems.append(Problem(line, f"cannot be emptied: every {noun} has a {spec.name.replace('_', ' ')}", source))
    else:
        typed[spec.name] = None


def _whole(kind: Kind, raw: Any, into: dict[str, Any], line: int | None, source: str, text: bool) -> list[Problem]:
    """An `attributes` column: a JSON object (as JSON text in CSV) merged into the attributes."""
    import json

    if text:
        if not raw.strip():
            return []
        try:
            raw = json.loads(raw)
        except ValueError:
            return [Problem(line, 'not a JSON object: write it as {"name": value, ...}', source)]
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [Problem(line, 'expected an object of attributes, e.g. {"segment": "enterprise"}', source)]
    for name, value in raw.items():
        if not ATTRIBUTE_NAME.fullmatch(name) or name in FIELDS[kind]:
            return [Problem(line, f"'{name}' cannot be an attribute name: use letters, digits and '_'", source)]
        into.setdefault(name, value)
    return []


def _inferred(text: str) -> Any:
    """An attribute from CSV text: whole numbers, decimals and true/false become JSON numbers and booleans, so
    `account.attributes.webinars >= 2` compares numbers; anything else (a postal code '01234') stays text."""
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def _missing_key(kind: Kind, column: bool = False) -> str:
    """A row without its key; `column`: a header without the key's column."""
    what = {"accounts": "its id", "people": "an email", "opportunities": "its id"}[kind]
    hint = f" (add the column, or rename one with --map SOURCE={KEY[kind]})" if column else ""
    return f"missing: every {SINGULAR[kind]} needs {what}{hint}"


def _near(word: str, choices: Iterable[str], cutoff: float = 0.75) -> str:
    import difflib

    matches = difflib.get_close_matches(word.lower(), sorted(choices), n=1, cutoff=cutoff)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _attribute_like(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()
    return cleaned if cleaned and cleaned[0].isalpha() else f"x_{cleaned}"
