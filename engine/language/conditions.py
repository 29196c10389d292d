"""Safe expressions over account, person, buying group and event data.

Conditions are Jinja2 expressions run in a sandbox that only reads mapping keys: no attribute
access on Python objects, no method calls, no code execution. Each is checked once at validation
(syntax, names, attributes, filters, regexes) and compiled once; evaluation is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.exceptions import TemplateError, TemplateSyntaxError
from jinja2.lexer import TOKEN_STRING, Lexer
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from engine.language.errors import ExpressionError, did_you_mean

# The attributes each scope exposes. `attributes` (and `payload`, `fields`) hold free-form data and
# are not checked below their first level.
ACCOUNT_FIELDS = frozenset(
    {
        "id",
        "name",
        "domain",
        "industry",
        "employees",
        "annual_revenue",
        "country",
        "timezone",
        "owner_email",
        "attributes",
        "created_at",
    }
)
PERSON_FIELDS = frozenset(
    {
        "id",
        "email",
        "first_name",
        "last_name",
        "job_title",
        "department",
        "seniority",
        "phone",
        "unsubscribed",
        "engagement_score",
        "role",
        "attributes",
        "created_at",
    }
)
BUYING_GROUP_FIELDS = frozenset(
    {"id", "solution_interest", "completeness", "engagement", "missing_roles", "stage", "members"}
)
EVENT_COMMON_FIELDS = frozenset({"type", "event_id", "occurred_at", "email", "payload"})
EVENT_FIELDS: dict[str, frozenset[str]] = {
    "form_fill": frozenset({"form", "fields"}),
    "email_open": frozenset({"message", "node"}),
    "email_click": frozenset({"message", "node", "link", "url"}),
    "web_visit": frozenset({"url", "page", "referrer"}),
    "person_added": frozenset(),
    "person_updated": frozenset({"changes"}),
    "opportunity_created": frozenset({"opportunity", "stage", "amount"}),
    "opportunity_stage_changed": frozenset({"opportunity", "stage", "amount"}),
}
_FILTERS = (
    "abs",
    "capitalize",
    "default",
    "first",
    "float",
    "int",
    "join",
    "last",
    "length",
    "list",
    "lower",
    "max",
    "min",
    "replace",
    "round",
    "string",
    "sum",
    "title",
    "trim",
    "unique",
    "upper",
    "date",
)
_TESTS = (
    "matching",
    "defined",
    "undefined",
    "none",
    "number",
    "string",
    "boolean",
    "integer",
    "float",
    "mapping",
    "sequence",
    "in",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "true",
    "false",
    "divisibleby",
    "odd",
    "even",
)


class Missing(Undefined):
    """A value the data does not have: false in tests, never equal, never greater or smaller.

    SQL-like: `account.annual_revenue >= 5e7` is simply false for an account without revenue,
    instead of failing the journey at 3 a.m.
    """

    __slots__ = ()

    def _false(self, *_: object) -> bool:
        return False

    def _missing(self, *_: object) -> Missing:
        return self

    # Undefined declares these as raising (typed NoReturn); a missing value compares false instead,
    # and arithmetic on it stays missing, as NULL does in SQL.
    __lt__ = __le__ = __gt__ = __ge__ = _false  # type: ignore[assignment]
    __contains__ = _false
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _missing  # type: ignore[assignment]
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _missing  # type: ignore[assignment]
    __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = __pos__ = _missing  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, Missing)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = Undefined.__hash__


def _raw_string(token_text: str) -> str:
    """Make a Jinja string literal raw, so a regex's backslashes survive; keep escaped quotes."""
    quote, inner = token_text[0], token_text[1:-1]
    doubled = inner.replace("\\", "\\\\").replace("\\\\" + quote, "\\" + quote)
    return quote + doubled + quote


class _RawStringLexer(Lexer):
    def wrap(self, stream: Any, name: str | None = None, filename: str | None = None) -> Any:
        raw = ((line, token, _raw_string(value) if token == TOKEN_STRING else value) for line, token, value in stream)
        return super().wrap(raw, name, filename)


class _ExpressionEnvironment(SandboxedEnvironment):
    """Reads only mapping keys; everything else (attributes, methods) is refused."""

    @cached_property
    def lexer(self) -> Lexer:
        return _RawStringLexer(self)

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self.getitem(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Mapping):
            if argument in obj:
                value = obj[argument]
                return self.undefined(name=str(argument)) if value is None else value
            return self.undefined(name=str(argument))
        if isinstance(obj, list | tuple | str) and isinstance(argument, int | slice):
            try:
                return obj[argument]
            except IndexError:
                return self.undefined(name=str(argument))
        return self.undefined(obj=obj, name=str(argument))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return False

    def is_safe_callable(self, obj: Any) -> bool:
        return obj in _SAFE_CALLABLES


def _is_none(value: Any) -> bool:
    """Null and missing are the same to a marketer."""
    return value is None or isinstance(value, Undefined)


def _matching(value: Any, pattern: str) -> bool:
    return isinstance(value, str) and _regex(pattern).search(value) is not None


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def to_datetime(value: Any) -> datetime | Missing:
    """ISO text, dates and datetimes -> an aware datetime (UTC when no zone is given)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            return to_datetime(datetime.fromisoformat(value))
        except ValueError:
            return Missing(name=value)
    return Missing(name=str(value))


def _days(amount: float) -> timedelta:
    return timedelta(days=amount)


def _hours(amount: float) -> timedelta:
    return timedelta(hours=amount)


_SAFE_CALLABLES: frozenset[Callable[..., Any]] = frozenset({to_datetime, _days, _hours})


@lru_cache(maxsize=1)
def environment() -> _ExpressionEnvironment:
    env = _ExpressionEnvironment(undefined=Missing)
    env.filters = {name: env.filters[name] for name in _FILTERS if name in env.filters}
    env.filters["date"] = to_datetime
    env.tests = {name: env.tests[name] for name in _TESTS if name in env.tests}
    env.tests["matching"] = _matching
    env.tests["none"] = _is_none
    env.globals = {"date": to_datetime, "days": _days, "hours": _hours}
    return env


@dataclass(frozen=True)
class Scope:
    """What an expression may name: each variable with its known attributes (None: anything).

    `notes` explain a name or `name.attribute` that is refused here but would be right elsewhere,
    e.g. {"buying_group": "give the journey a solution_interest"}.
    """

    variables: Mapping[str, frozenset[str] | None]
    where: str  # e.g. "split conditions", for "'event' is not available in split conditions"
    notes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Condition:
    source: str
    _evaluate: Callable[..., Any]

    def evaluate(self, **context: Any) -> bool:
        """True or false for this data; an error inside the expression raises ExpressionError."""
        try:
            result = self._evaluate(**context)
        except (TemplateError, TypeError, ValueError, ArithmeticError, re.error) as error:
            raise ExpressionError(f"expression '{self.source}' failed: {error}") from error
        return bool(result) and not isinstance(result, Undefined)


@lru_cache(maxsize=4096)
def parse(source: str) -> nodes.Expr:
    """The expression's tree (cached: callers only read it)."""
    env = environment()
    try:
        parser = Parser(env, source, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise ExpressionError(f"unexpected '{token.value}' after the expression")
    except TemplateSyntaxError as error:
        message = (error.message or "cannot be parsed").rstrip(".").replace("'end of template'", "end of template")
        message = message.replace("end of template", "end of expression")
        raise ExpressionError(message) from None
    return expression


def names(source: str) -> set[str]:
    """The variables an expression reads (empty when it does not parse)."""
    try:
        return {node.name for node in parse(source).find_all(nodes.Name)}
    except ExpressionError:
        return set()


def check(source: str, scope: Scope) -> list[str]:
    """Every problem of `source` in `scope`, as messages; empty when it is fine."""
    try:
        expression = parse(source)
    except ExpressionError as error:
        return [f"invalid expression '{source}': {error}"]
    return list(dict.fromkeys(_problems(expression, scope)))


def compile_condition(source: str, scope: Scope) -> Condition:
    problems = check(source, scope)
    if problems:
        raise ExpressionError("; ".join(problems))
    return Condition(source, _compiled(source))


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Callable[..., Any]:
    return environment().compile_expression(source, undefined_to_none=False)


def _problems(expression: nodes.Expr, scope: Scope) -> Iterator[str]:
    env = environment()
    kinds = (nodes.Name, nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test, nodes.Call)
    for node in [expression, *expression.find_all(kinds)]:
        match node:
            case nodes.Getattr(attr=attribute) if attribute.startswith("_"):
                yield f"attribute '{attribute}' is not allowed: names starting with '_' are private"
            case nodes.Getattr(node=nodes.Literal()) | nodes.Getitem(node=nodes.Literal()):
                yield "attributes can only be read from the data (account, person, ...), not from a literal"
            case nodes.Name(name=name) if not (name in scope.variables or name in env.globals or name == "now"):
                known = [*scope.variables, *env.globals]
                if name in scope.notes:
                    yield f"'{name}' is not available in {scope.where}: {scope.notes[name]}"
                elif name in ("account", "person", "buying_group", "event"):
                    yield f"'{name}' is not available in {scope.where} (use {_listing(scope.variables)})"
                else:
                    yield f"unknown name '{name}'{did_you_mean(name, known)}"
            case nodes.Getattr() | nodes.Getitem():
                yield from (message for _, message in _attribute_problem(node, scope.variables, scope.notes))
            case nodes.Filter(name=name) if name not in env.filters:
                yield f"unknown filter '{name}'{did_you_mean(name, env.filters)}"
            case nodes.Test(name=name) if name not in env.tests:
                yield f"unknown test '{name}'{did_you_mean(name, env.tests)}"
            case nodes.Test(name="matching", args=[nodes.Const(value=str() as pattern)]):
                try:
                    re.compile(pattern)
                except re.error as error:
                    yield f"invalid regular expression '{pattern}': {error}"
            case nodes.Call(node=callee) if not (isinstance(callee, nodes.Name) and callee.name in env.globals):
                yield "only date(), days() and hours() can be called; use filters such as '| lower' instead"


def _listing(names: Mapping[str, object]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def attribute_problems(tree: nodes.Node, variables: Mapping[str, frozenset[str] | None]) -> list[tuple[int, str]]:
    """(line, message) for unknown first-level attributes of the known variables in `tree` (templates too)."""
    found = tree.find_all((nodes.Getattr, nodes.Getitem))
    return list(dict.fromkeys(problem for node in found for problem in _attribute_problem(node, variables, {})))


def _attribute_problem(
    node: nodes.Node, variables: Mapping[str, frozenset[str] | None], notes: Mapping[str, str]
) -> Iterator[tuple[int, str]]:
    match node:
        case (
            nodes.Getattr(node=nodes.Name(name=name), attr=attribute)
            | nodes.Getitem(node=nodes.Name(name=name), arg=nodes.Const(value=str() as attribute))
        ) if variables.get(name) is not None:
            fields = variables[name] or frozenset()
            if attribute not in fields:
                note = notes.get(f"{name}.{attribute}")
                hint = f": {note}" if note else did_you_mean(attribute, fields)
                yield node.lineno, f"unknown attribute '{name}.{attribute}'{hint}"
