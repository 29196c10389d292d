"""Event selectors: `TYPE` or `TYPE where EXPRESSION`, checked by the journey language and translated to SQL.

The `where` clause is the journey language's expression syntax (engine/language/conditions.py) over `event`, so a
marketer writes the same `event.form == 'demo-request'` here as in a `wait_for_event` node. Comparisons
become SQL conditions on the event log (JSON paths for payload fields), so reports never load the events;
the rest (regexes, filters) is evaluated in Python on that event type's rows only (evaluation.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from sqlalchemy import Column, and_, bindparam, false, func, not_, or_, true
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlmodel import col

from engine.analytics.errors import SelectorError
from engine.db import ActivityEvent
from engine.language import conditions
from engine.language.errors import did_you_mean
from engine.language.model import EVENT_TYPES

STEP_TYPES = ("node_entered", "node_left")
OPPORTUNITY_TYPES = ("opportunity_created", "opportunity_stage_changed")
PERSON_PATH = "person_path"  # a people_split's decision for one person (activities/people.py)
KNOWN_TYPES = (*EVENT_TYPES, *STEP_TYPES, PERSON_PATH)

# `event.<name>` reads these columns of the event log; every other name is a key of the payload, as in
# the journey language where an event's payload keys are `event.<key>`.
COLUMNS: dict[str, Any] = {
    "type": ActivityEvent.type,
    "node": ActivityEvent.node_id,
    "journey": ActivityEvent.journey_id,
    "email": ActivityEvent.email,
    "event_id": ActivityEvent.key,
}
_EXTRA_FIELDS: dict[str, frozenset[str]] = {
    "node_entered": frozenset({"node_type", "visit", "version"}),
    "node_left": frozenset({"node_type", "visit", "version", "branch", "variant"}),  # variant: of a variant_split
    "account_updated": frozenset({"set", "add"}),
    PERSON_PATH: frozenset({"path", "path_index", "visit", "version", "left_out"}),
    # Content analytics group visits and clicks by the content's type (the seed's flow example).
    "web_visit": frozenset({"content_type"}),
    "email_click": frozenset({"content_type"}),
    "opportunity_created": frozenset({"opportunity_id"}),
    "opportunity_stage_changed": frozenset({"opportunity_id"}),
}
MAX_SELECTOR_LENGTH = conditions.MAX_EXPRESSION_LENGTH + 100
_SYNTAX = re.compile(r"^\s*(?P<type>[a-z_]+)\s*(?:\bwhere\b\s*(?P<where>.+?))?\s*$", re.DOTALL)
_FLIPPED = {"eq": "eq", "ne": "ne", "lt": "gt", "gt": "lt", "lteq": "gteq", "gteq": "lteq"}


@dataclass(frozen=True)
class Selector:
    """Which events count: one event type and an optional condition on the event.

    A `where` that SQL cannot express (a regex, a filter) is evaluated in Python by
    engine/analytics/evaluation.py, which fills `matching_ids`; every other `where` runs in the database.
    """

    type: str
    where: str | None = None
    in_sql: bool = True
    matching_ids: frozenset[int] | None = None

    @property
    def label(self) -> str:
        return self.type + (f" where {self.where}" if self.where else "")

    def condition(self) -> ColumnElement[bool]:
        """The SQL condition on `activity_event` rows matching this selector."""
        matches_type = col(ActivityEvent.type) == self.type
        if self.where is None:
            return matches_type
        if self.in_sql:
            return and_(matches_type, _translate(conditions.parse(self.where), self.where))
        if self.matching_ids is None:
            raise RuntimeError(f"selector '{self.label}' must be evaluated first (engine.analytics.evaluation)")
        if not self.matching_ids:
            return false()
        # Inline literals: a long list of bound parameters would hit SQLite's limit on variables.
        ids: BindParameter[list[int]] = bindparam(None, sorted(self.matching_ids), expanding=True, literal_execute=True)
        return and_(matches_type, col(ActivityEvent.id).in_(ids))


def fields(event_type: str) -> frozenset[str]:
    """What `event.<name>` may name for this event type (payload keys below the first level are free)."""
    specific = conditions.EVENT_FIELDS.get(event_type, frozenset())
    return conditions.EVENT_COMMON_FIELDS | frozenset(COLUMNS) | specific | _EXTRA_FIELDS.get(event_type, frozenset())


def parse_selector(text: str) -> Selector:
    """'form_fill where event.form == "x"' -> Selector; a SelectorError says what is wrong and what to write."""
    if len(text) > MAX_SELECTOR_LENGTH:  # before any regex reads it
        raise SelectorError(f"selector longer than {MAX_SELECTOR_LENGTH:,} characters")
    match = _SYNTAX.match(text)
    if match is None:
        raise SelectorError(f"invalid selector '{text}': expected an event type, optionally 'where <expression>'")
    event_type, where = match["type"], match["where"]
    if event_type not in KNOWN_TYPES:
        raise SelectorError(
            f"selector '{text}': unknown event type '{event_type}'{did_you_mean(event_type, KNOWN_TYPES)}"
            f" (known: {', '.join(KNOWN_TYPES)})"
        )
    if where is None:
        return Selector(event_type)
    scope = conditions.Scope(
        {"event": fields(event_type)},
        "selectors",
        notes={"account": "a selector reads the event only", "person": "a selector reads the event only"},
    )
    problems = conditions.check(where, scope)
    if problems:
        raise SelectorError(f"selector '{text}': {'; '.join(problems)}")
    try:
        _translate(conditions.parse(where), where)
    except _NotInSql:
        return Selector(event_type, where, in_sql=False)
    return Selector(event_type, where)


def _translate(node: nodes.Node, source: str) -> ColumnElement[bool]:
    """A two-valued SQL condition (never NULL), so `not` and `!=` treat missing values as the language does."""
    match node:
        case nodes.And(left=left, right=right):
            return and_(_translate(left, source), _translate(right, source))
        case nodes.Or(left=left, right=right):
            return or_(_translate(left, source), _translate(right, source))
        case nodes.Not(node=inner):
            return not_(_translate(inner, source))
        case nodes.Const(value=bool() as value):
            return true() if value else false()
        case nodes.Test(node=field, name="defined" | "undefined" | "none" as test, args=[]):
            column = _column(field, None, source)
            return column.is_not(None) if test == "defined" else column.is_(None)
        case nodes.Compare(expr=left, ops=[nodes.Operand(op=op, expr=right)]):
            if isinstance(left, nodes.Const) and op in _FLIPPED:
                left, right, op = right, left, _FLIPPED[op]
            return _compare(left, op, right, source)
    raise _untranslatable(source, "use comparisons of event fields with values joined by and / or / not")


def _compare(left: nodes.Node, op: str, right: nodes.Node, source: str) -> ColumnElement[bool]:
    if op in ("in", "notin"):
        if not isinstance(right, nodes.List | nodes.Tuple) or not all(isinstance(i, nodes.Const) for i in right.items):
            raise _untranslatable(source, "'in' needs a list of values, e.g. event.form in ['a', 'b']")
        values = [item.value for item in right.items if isinstance(item, nodes.Const)]
        column = _column(left, values[0] if values else "", source)
        if op == "in":
            return _known(column, column.in_(values), missing=False) if values else false()
        return _known(column, column.not_in(values), missing=True) if values else true()
    if not isinstance(right, nodes.Const):
        raise _untranslatable(source, "compare an event field with a value, e.g. event.stage == 'closed_won'")
    value = right.value
    column = _column(left, value, source)
    if value is None:
        return column.is_(None) if op == "eq" else column.is_not(None) if op == "ne" else false()
    match op:
        case "eq":
            return _known(column, column == value, missing=False)
        case "ne":
            return _known(column, column != value, missing=True)
        case "lt":
            return _known(column, column < value, missing=False)
        case "lteq":
            return _known(column, column <= value, missing=False)
        case "gt":
            return _known(column, column > value, missing=False)
        case "gteq":
            return _known(column, column >= value, missing=False)
    raise _untranslatable(source, f"the operator '{op}' is not supported")


def _known(column: ColumnElement[Any], comparison: ColumnElement[bool], *, missing: bool) -> ColumnElement[bool]:
    """The comparison, or `missing` where the field is absent (NULL): never NULL itself, so `not` keeps its
    meaning. A column of the log stays a plain condition an index can serve; a payload field is read once
    (COALESCE), where `x IS NOT NULL AND x = v` parsed every row's payload twice."""
    if isinstance(column, Column | InstrumentedAttribute):
        return or_(column.is_(None), comparison) if missing else and_(column.is_not(None), comparison)
    return func.coalesce(comparison, true() if missing else false())


def _column(node: nodes.Node, value: object, source: str) -> ColumnElement[Any]:
    """The SQL for `event.a` or `event.payload.a.b`, typed after the value it is compared with."""
    path = _path(node)
    if path is None:
        raise _untranslatable(source, "only event fields (event.name, event.payload.name) can be compared")
    if path[0] == "payload":
        path = path[1:]
    elif len(path) == 1 and path[0] in COLUMNS:
        return COLUMNS[path[0]]  # type: ignore[no-any-return]
    if not path:
        raise _untranslatable(source, "compare a field of the payload, e.g. event.payload.form")
    element = ActivityEvent.payload[tuple(path)] if len(path) > 1 else ActivityEvent.payload[path[0]]  # type: ignore[index]
    if isinstance(value, bool):
        return element.as_boolean()  # type: ignore[no-any-return]
    if isinstance(value, int | float):
        return element.as_float()  # type: ignore[no-any-return]
    return element.as_string()  # type: ignore[no-any-return]


def _path(node: nodes.Node) -> list[str] | None:
    match node:
        case nodes.Getattr(node=nodes.Name(name="event"), attr=name):
            return [name]
        case nodes.Getitem(node=nodes.Name(name="event"), arg=nodes.Const(value=str() as name)):
            return [name]
        case nodes.Getattr(node=inner, attr=name):
            parent = _path(inner)
            return [*parent, name] if parent else None
        case nodes.Getitem(node=inner, arg=nodes.Const(value=str() as name)):
            parent = _path(inner)
            return [*parent, name] if parent else None
    return None


class _NotInSql(Exception):
    """The expression is valid but has no SQL translation here; it is evaluated in Python instead."""


def _untranslatable(source: str, hint: str) -> _NotInSql:
    return _NotInSql(f"where '{source}' has no SQL translation: {hint}")
