"""What `external_action` reads of a service's answer: the `response` scope of its `on_response` conditions and
`store` expressions, their checks, and their deterministic evaluation inside the workflow.

`response.status` is the HTTP status (only 2xx answers reach these: failures take on_error / on_timeout),
`response.body` the JSON body (or its text, capped) and `response.headers` the answer's headers, lowercased.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.exceptions import TemplateError

from engine.language import conditions
from engine.language.errors import ExpressionError, ExpressionLimitError

RESPONSE_FIELDS = frozenset({"status", "body", "headers"})
SCOPE = conditions.Scope(
    {"response": RESPONSE_FIELDS},
    "response conditions",
    {
        "account": "on_response and store read only the service's answer; branch on the account with a split after "
        "this node",
        "person": "on_response and store read only the service's answer",
        "event": "on_response and store read only the service's answer",
        "buying_group": "on_response and store read only the service's answer",
        "response.status_code": "the status is 'response.status'",
        "response.json": "the parsed JSON body is 'response.body'",
        "response.text": "a body that is not JSON is text in 'response.body'",
    },
)


def check(source: str) -> list[str]:
    """Every problem of an `on_response` condition or `store` expression, as messages."""
    problems = conditions.check(source, SCOPE)
    if not problems:
        problems = list(_status_problems(conditions.parse(source)))
    return problems


def _status_problems(expression: nodes.Expr) -> Iterator[str]:
    """An equality of `response.status` with a status outside 200-299 could never hold: failures never get here."""
    for compare in [expression, *expression.find_all(nodes.Compare)]:
        if not isinstance(compare, nodes.Compare):
            continue
        operands = [compare.expr, *(operand.expr for operand in compare.ops)]
        if not any(_is_status(operand) for operand in operands) or any(
            operand.op not in ("eq", "in") for operand in compare.ops
        ):
            continue
        for operand in operands:
            items = operand.items if isinstance(operand, nodes.List | nodes.Tuple) else [operand]
            for item in items:
                value = item.value if isinstance(item, nodes.Const) else None
                if isinstance(value, int) and not isinstance(value, bool) and not 200 <= value <= 299:
                    yield (
                        f"response.status is never {value} here: only 2xx answers reach on_response "
                        "(a failure takes on_error, or on_timeout)"
                    )


def _is_status(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Getattr)
        and node.attr == "status"
        and isinstance(node.node, nodes.Name)
        and node.node.name == "response"
    )


def data(status: int, body: Any, headers: Mapping[str, str]) -> dict[str, Any]:
    """The `response` variable of the expressions."""
    return {"status": status, "body": body, "headers": dict(headers)}


@dataclass(frozen=True)
class Value:
    """A `store` expression, compiled: its value for one response, or MISSING."""

    source: str
    _evaluate: Callable[..., Any]

    def evaluate(self, response: Mapping[str, Any]) -> Any:
        """The plain JSON value to store; MISSING when the answer has none (or null). Raises ExpressionError when
        the expression fails, ExpressionLimitError when it goes over the limits."""
        try:
            result = self._evaluate(response=response)
        except ExpressionLimitError as error:
            raise ExpressionLimitError(f"expression '{conditions.shown(self.source)}': {error}") from None
        except (TemplateError, TypeError, ValueError, ArithmeticError, ExpressionError) as error:
            raise ExpressionError(f"expression '{conditions.shown(self.source)}' failed: {error}") from error
        return _plain(result)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, Undefined):
        return MISSING
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"{value} is not a number an account can keep")
    if isinstance(value, bool | int | float | str | list | dict):
        return value
    raise ExpressionError(f"a {type(value).__name__} cannot be stored on an account")


def compile_value(source: str) -> Value:
    problems = check(source)
    if problems:
        raise ExpressionError("; ".join(problems))
    return Value(source, _compiled(source))


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Callable[..., Any]:
    return conditions.environment().compile_expression(source, undefined_to_none=False)


def compile_condition(source: str) -> conditions.Condition:
    return conditions.compile_condition(source, SCOPE)


ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # as engine/data/fields.py names custom attributes
ENGINE_OWNED = {"updated_at": "is set by the engine when the account changes"}


def node_problems(
    whens: Sequence[str], store: Mapping[str, str], read_only: frozenset[str]
) -> Iterator[tuple[tuple[str | int, ...], str, bool]]:
    """(where in the node, message, whether it points at the key) for each problem of on_response and store."""
    for index, when in enumerate(whens):
        for problem in check(when):
            yield ("on_response", index, "when"), f"on_response[{index}].when: {problem}", False
    for name, source in store.items():
        if name in read_only:
            yield ("store", name), f"store: '{name}' cannot be changed by a journey", True
        elif name in ENGINE_OWNED:
            yield ("store", name), f"store: '{name}' {ENGINE_OWNED[name]}", True
        elif not ATTRIBUTE_NAME.fullmatch(name):
            message = (
                f"store: '{name}' is not an account field or attribute name "
                "(letters, digits and '_', not starting with a digit, at most 64)"
            )
            yield ("store", name), message, True
        for problem in check(source):
            yield ("store", name), f"store.{name}: {problem}", False
