"""The fast expression lexer gives exactly the tokens Jinja's own lexer gives, or leaves the source to Jinja: so
parse trees, and every message about a broken expression, stay Jinja's (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import nodes

from engine.language import conditions, expression_lexer
from engine.language.errors import ExpressionError

SCOPE = conditions.Scope({"account": conditions.ACCOUNT_FIELDS, "event": None}, "tests")
PIECES = [
    *("account", "event", "name", "employees", "_x", "é", "and", "or", "not", "in", "is", "matching", "none", "true"),
    *(" ", "  ", "\n", "\t", ".", ",", ":", "|", "~", "(", ")", "[", "]", "{", "}", "}}", "-}}", "\r", "?", "#", "\\"),
    *("==", "!=", ">=", "<=", "<", ">", "=", "+", "-", "*", "**", "/", "//", "%", ";"),
    *("'x'", '"y"', "'a\\'b'", "'\\\\d+'", "'\\n'", "'é'", "'\\xZZ'", "'open", "'multi\nline'"),
    *("1", "0", "00", "09", "0x1F", "0X1g", "0o17", "0b101", "1_000", "1__0", "1.5", ".5", "2e3", "1.5e-3", "1e"),
]
QUICK = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def jinja_tokens(source: str) -> Any:
    """What Jinja's lexer makes of the source (with the engine's raw strings): its tokens, or its error."""
    try:
        return list(conditions.environment().lexer.tokenize(source, state="variable"))
    except Exception as error:  # any error: the fast lexer must then leave the source to Jinja
        return error


@QUICK
@given(st.lists(st.sampled_from(PIECES), max_size=16).map("".join))
def test_same_tokens_as_jinja_or_none(source: str) -> None:
    fast = expression_lexer.tokens(source)
    if fast is not None:
        assert fast == jinja_tokens(source)


@QUICK
@given(st.text(max_size=40))
def test_any_text_same_tokens_or_none(source: str) -> None:
    fast = expression_lexer.tokens(source)
    if fast is not None:
        assert fast == jinja_tokens(source)


@pytest.mark.parametrize(
    "source",
    [
        "event.form == 'demo-3' and account.employees >= 3",
        "account.industry in ['Agriculture', 'Biotech'] and account.annual_revenue > 3000",
        "person.job_title is matching('(?i)\\\\b(cto|vp)\\\\b') and account.employees >= 3",
        "response.status == 200 and response.body.plan | lower == 'pro'",
        "account.created_at | date > now - days(30)\n  or account.employees > 1_000",
    ],
)
def test_everyday_expressions_take_the_fast_way(source: str) -> None:
    tokens = expression_lexer.tokens(source)
    assert tokens is not None
    assert tokens == jinja_tokens(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("account.name == 'x", 'unexpected char "\'" at 16'),
        ("account.name ? 1", "unexpected char '?' at 13"),
        ("(account.employees > 1]", "unexpected ']', expected ')'"),
        ("account.name }} x", "unexpected '}}' after the expression"),
        ("account.name == 'a' b", "unexpected 'b' after the expression"),
        ("account.name |", "unexpected end of expression, expected 'name'"),
        ("[1, 2", "unexpected end of expression, expected ','"),
        ("0x1G > 1", "unexpected 'G' after the expression"),
    ],
)
def test_broken_expressions_keep_jinjas_message(source: str, message: str) -> None:
    assert conditions.check(source, SCOPE) == [f"invalid expression '{source}': {message}"]


def _shape(node: Any) -> Any:
    """A tree as nested tuples, with every node's line number (nodes compare equal without them)."""
    if isinstance(node, nodes.Node):
        return type(node).__name__, node.lineno, tuple(_shape(getattr(node, name, None)) for name in node.fields)
    if isinstance(node, list):
        return [_shape(item) for item in node]
    return node


@QUICK
@given(st.lists(st.sampled_from(PIECES), max_size=16).map("".join))
def test_same_trees_and_messages_as_jinja_alone(source: str) -> None:
    def outcome() -> Any:
        conditions.parsed.cache_clear()
        try:
            return _shape(conditions.parse(source))
        except ExpressionError as error:
            return str(error)

    fast = outcome()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(expression_lexer, "tokens", lambda _: None)
        assert outcome() == fast


def test_nodes_in_find_all_order_with_their_lines() -> None:
    source = "account.name ==\n  'x' and\n  account.employees > 1"
    found = conditions.parsed(source)
    assert list(found.in_order) == [found.tree, *found.tree.find_all(nodes.Node)]
    assert {node.lineno for node in found.in_order} - {None} == {1, 2, 3}  # an Operand has no line of its own
