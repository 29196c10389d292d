"""Safe expressions over account, person, buying group and event data.

Conditions are Jinja2 expressions run in a sandbox that only reads mapping keys: no attribute
access on Python objects, no method calls, no code execution. Each is checked once at validation
(syntax, names, attributes, filters, regexes) and compiled once; evaluation is deterministic.

Expressions come from journey authors and from analytics URLs, so their work is bounded by construction:
the source is limited in length and nesting, `matching` runs RE2 (linear time, no catastrophic
backtracking), and arithmetic, repetition and `replace` refuse to build values beyond the limits below
(a constant case is refused at validation). Python's own big-number and regex code holds the GIL, so an
unbounded expression would freeze every thread of the process, not only its own.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

import re2
from jinja2 import Undefined, nodes
from jinja2.exceptions import TemplateError, TemplateSyntaxError
from jinja2.lexer import TOKEN_STRING, Lexer, TokenStream
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from engine.language import expression_lexer
from engine.language.errors import ExpressionError, ExpressionLimitError, did_you_mean

MAX_EXPRESSION_LENGTH = 2_000  # characters of source
MAX_NESTING = 24  # brackets and nested operators: Jinja and Python's compiler recurse on them
MAX_INT_BITS = 4_096  # about 1,200 decimal digits
MAX_SIZE = 100_000  # characters or items one operation may build
MAX_PATTERN_LENGTH = 1_000
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = 8 << 20  # a pattern whose automaton needs more is refused, not built
_RE2_OPTIONS.log_errors = False  # errors are reported to the author, not logged by RE2 to stderr

_OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "**": operator.pow,
    "%": operator.mod,
}

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
    {"id", "solution_interest", "completeness", "engagement", "missing_roles", "stage", "status", "members"}
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
    "account_updated": frozenset({"changes"}),
    "buying_group_updated": frozenset({"buying_group", "solution_interest", "changes", "journey", "node"}),
    "member_removed": frozenset({"buying_group", "solution_interest", "role", "journey", "node"}),
    "member_added": frozenset({"buying_group", "solution_interest", "role", "journey", "node"}),
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


class _RawStringLexer(Lexer):
    def wrap(self, stream: Any, name: str | None = None, filename: str | None = None) -> Any:
        raw = (
            (line, token, expression_lexer.raw_string(value) if token == TOKEN_STRING else value)
            for line, token, value in stream
        )
        return super().wrap(raw, name, filename)


class _ExpressionEnvironment(SandboxedEnvironment):
    """Reads only mapping keys; everything else (attributes, methods) is refused."""

    @cached_property
    def lexer(self) -> Lexer:
        return _RawStringLexer(self)

    def _tokenize(
        self, source: str, name: str | None, filename: str | None = None, state: str | None = None
    ) -> TokenStream:
        """An expression's tokens from expression_lexer (the same tokens, in a fraction of the time) when it can."""
        found = expression_lexer.tokens(source) if state == "variable" and not self.extensions else None
        if found is None:
            return super()._tokenize(source, name, filename, state)
        return TokenStream(iter(found), name, filename)

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

    # Jinja routes these operators through call_binop (and never folds them at compile time).
    intercepted_binops = frozenset(_OPERATIONS)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_operation(operator, left, right)
        return _OPERATIONS[operator](left, right)

    def is_safe_callable(self, obj: Any) -> bool:
        return obj in _SAFE_CALLABLES


def _is_none(value: Any) -> bool:
    """Null and missing are the same to a marketer."""
    return value is None or isinstance(value, Undefined)


def _matching(value: Any, pattern: Any) -> bool:
    return isinstance(value, str) and regex(str(pattern)).search(value) is not None


@lru_cache(maxsize=512)
def regex(pattern: str) -> Any:
    """The pattern compiled by RE2: matching takes time linear in the text, whatever the pattern."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ExpressionLimitError(f"regular expression longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as error:
        lookaround = any(marker in pattern for marker in ("(?=", "(?!", "(?<=", "(?<!"))
        unsupported = lookaround or _BACKREFERENCE.search(pattern)
        hint = " (RE2 syntax: look-arounds and back-references are not supported)" if unsupported else ""
        reason = error.args[0].decode(errors="replace") if error.args and isinstance(error.args[0], bytes) else error
        raise ExpressionError(f"invalid regular expression '{pattern}': {reason}{hint}") from None


_BACKREFERENCE = re.compile(r"\\[1-9]")


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


def check_operation(symbol: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would exceed the limits, before Python computes it."""
    ints = isinstance(left, int) and isinstance(right, int)
    if symbol == "**" and ints and right > 0 and abs(left) > 1 and right * math.log2(abs(left)) > MAX_INT_BITS:
        raise ExpressionLimitError(f"{left} ** {right} is too large (limit: about {MAX_INT_BITS} bits)")
    if symbol == "*":
        if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise ExpressionLimitError(f"a product larger than {MAX_INT_BITS} bits")
        for sequence, times in ((left, right), (right, left)):
            size = _sized(sequence)
            if size is not None and isinstance(times, int) and size * times > MAX_SIZE:
                raise ExpressionLimitError(f"repeating a value {times} times builds more than {MAX_SIZE:,} items")
    if symbol == "+":
        sizes = (_sized(left), _sized(right))
        if None not in sizes and sum(size or 0 for size in sizes) > MAX_SIZE:
            raise ExpressionLimitError(f"joining values builds more than {MAX_SIZE:,} characters")
    if symbol == "%" and isinstance(left, str):
        raise ExpressionLimitError("'%' formatting of text is not available; use '~' to join text")


def _replace(value: Any, old: Any, new: Any, count: int | None = None) -> Any:
    """Jinja's `replace`, refused when the result would exceed the size limit."""
    text, old, new = str(value), str(old), str(new)
    hits = len(text) + 1 if old == "" else text.count(old)
    if count is not None:
        hits = min(hits, max(count, 0))
    if len(text) + hits * (len(new) - len(old)) > MAX_SIZE:
        raise ExpressionLimitError(f"replace would build more than {MAX_SIZE:,} characters")
    return text.replace(old, new, -1 if count is None else count)


def _join(value: Any, separator: Any = "") -> str:
    items = [str(item) for item in value] if not isinstance(value, str) else list(value)
    if sum(map(len, items)) + len(str(separator)) * max(len(items) - 1, 0) > MAX_SIZE:
        raise ExpressionLimitError(f"join would build more than {MAX_SIZE:,} characters")
    return str(separator).join(items)


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
    env.filters["replace"] = _replace
    env.filters["join"] = _join
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
        except ExpressionLimitError as error:
            raise ExpressionLimitError(f"expression '{shown(self.source)}': {error}") from None
        except (TemplateError, TypeError, ValueError, ArithmeticError, ExpressionError, re2.error) as error:
            raise ExpressionError(f"expression '{shown(self.source)}' failed: {error}") from error
        return bool(result) and not isinstance(result, Undefined)


@dataclass(frozen=True)
class Parsed:
    """An expression's tree, and all its nodes in the order `find_all` visits them (the root first)."""

    tree: nodes.Expr
    in_order: tuple[nodes.Node, ...]


def parse(source: str) -> nodes.Expr:
    """The expression's tree (callers only read it); sources over the limits are refused unparsed."""
    return parsed(source).tree


@lru_cache(maxsize=4096)
def parsed(source: str) -> Parsed:
    """The expression parsed once and walked once (cached: callers only read it)."""
    _check_bounds(source)
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
    except (RecursionError, MemoryError, ValueError) as error:  # ValueError: an integer literal too long
        raise ExpressionError(f"cannot be parsed: {error}") from None
    found, depth = _walk(expression)
    if depth > MAX_NESTING:
        raise ExpressionLimitError(f"nested more than {MAX_NESTING} levels deep: split it into simpler conditions")
    return Parsed(expression, found)


def shown(source: str, limit: int = 120) -> str:
    """An expression as quoted in a message: on one line, and cut short when long."""
    flat = source.replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _check_bounds(source: str) -> None:
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionLimitError(f"longer than {MAX_EXPRESSION_LENGTH:,} characters")
    if "\x00" in source:
        raise ExpressionError("contains a NUL character")
    depth = deepest = 0
    for character in source:
        if character in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in ")]}":
            depth -= 1
    if deepest > MAX_NESTING:
        raise ExpressionLimitError(f"brackets nested more than {MAX_NESTING} levels deep")


def _walk(tree: nodes.Node) -> tuple[tuple[nodes.Node, ...], int]:
    """Every node, in `find_all` order, and how deep the tree goes: in one iterative pass (a deep tree must not
    exhaust the stack being measured), reading each node's fields as `iter_child_nodes` does."""
    found: list[nodes.Node] = []
    deepest, stack = 0, [(tree, 1)]
    while stack:
        current, level = stack.pop()
        found.append(current)
        deepest = max(deepest, level)
        children: list[nodes.Node] = []
        for name in current.fields:
            value = getattr(current, name, None)
            if isinstance(value, nodes.Node):
                children.append(value)
            elif isinstance(value, list):
                children.extend(item for item in value if isinstance(item, nodes.Node))
        stack.extend((child, level + 1) for child in reversed(children))
    return tuple(found), deepest


def names(source: str) -> set[str]:
    """The variables an expression reads (empty when it does not parse)."""
    try:
        return {node.name for node in parse(source).find_all(nodes.Name)}
    except ExpressionError:
        return set()


def check(source: str, scope: Scope) -> list[str]:
    """Every problem of `source` in `scope`, as messages; empty when it is fine."""
    try:
        expression = parsed(source)
    except ExpressionError as error:
        return [f"invalid expression '{shown(source)}': {error}"]
    return list(dict.fromkeys(_problems(expression.in_order, scope)))


def compile_condition(source: str, scope: Scope) -> Condition:
    problems = check(source, scope)
    if problems:
        raise ExpressionError("; ".join(problems))
    return Condition(source, _compiled(source))


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Callable[..., Any]:
    return environment().compile_expression(source, undefined_to_none=False)


def _problems(found: tuple[nodes.Node, ...], scope: Scope) -> Iterator[str]:
    env = environment()
    for node in found:
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
                    regex(pattern)
                except ExpressionError as error:
                    yield str(error)
            case nodes.Const(value=float() as number) if not math.isfinite(number):
                yield "a number too large to compute with: write it smaller"
            case nodes.BinExpr():
                try:
                    _constant(node)
                except ExpressionLimitError as error:
                    yield str(error)
                except (ArithmeticError, TypeError, ValueError):
                    pass  # a constant that fails is reported where it runs, like any failing expression
            case nodes.Call(node=callee) if not (isinstance(callee, nodes.Name) and callee.name in env.globals):
                yield "only date(), days() and hours() can be called; use filters such as '| lower' instead"


def _constant(node: nodes.Node) -> Any:
    """The value of a constant (sub)expression, computed within the limits; None when it reads data."""
    match node:
        case nodes.Const(value=value):
            return value
        case nodes.BinExpr(left=left, right=right) if node.operator in _OPERATIONS:
            left_value, right_value = _constant(left), _constant(right)
            if left_value is None or right_value is None:
                return None
            check_operation(node.operator, left_value, right_value)
            return _OPERATIONS[node.operator](left_value, right_value)
    return None


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
