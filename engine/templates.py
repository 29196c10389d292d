"""Email templates: Jinja2 in a sandbox, HTML autoescaped, unknown variables fail at validation.

A template is checked when the journey is validated (syntax, names, attributes, filters), so a typo
is reported to the marketer at publish time instead of failing an email at 3 a.m.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, meta, nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.conditions import ACCOUNT_FIELDS, BUYING_GROUP_FIELDS, PERSON_FIELDS, attribute_problems
from engine.errors import did_you_mean

JOURNEY_FIELDS = frozenset({"id", "name", "version"})
TEMPLATE_VARIABLES: Mapping[str, frozenset[str] | None] = {
    "account": ACCOUNT_FIELDS,
    "person": PERSON_FIELDS,
    "buying_group": BUYING_GROUP_FIELDS,
    "journey": JOURNEY_FIELDS,
    "unsubscribe_url": None,
}


@lru_cache(maxsize=2)
def environment(html: bool) -> ImmutableSandboxedEnvironment:
    """Sandboxed, strict about undefined values; HTML templates escape every value they print."""
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=html, keep_trailing_newline=True)


def is_html(name: str) -> bool:
    return name.removesuffix(".j2").endswith((".html", ".htm"))


def check(source: str, html: bool, account_fields: frozenset[str] = ACCOUNT_FIELDS) -> list[tuple[int, str]]:
    """Problems in a template as (line, message); line 1 when Jinja cannot say more."""
    env = environment(html)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as error:
        message = (error.message or "cannot be parsed").rstrip(".")
        return [(error.lineno or 1, f"template error: {message[:1].lower()}{message[1:]}")]
    problems: list[tuple[int, str]] = []
    # Jinja reports unknown filters and tests only when compiling to Python, which is slow; the tree says it.
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known = env.filters if isinstance(node, nodes.Filter) else env.tests
        if node.name not in known:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            problems.append((node.lineno, f"unknown {kind} '{node.name}'{did_you_mean(node.name, known)}"))
    if problems:
        return sorted(problems)  # finding variables would trip over the unknown filter
    variables = {**TEMPLATE_VARIABLES, "account": account_fields}
    for name in sorted(meta.find_undeclared_variables(tree)):
        if name not in variables:
            problems.append((_line_of(source, name), f"unknown variable '{name}'{did_you_mean(name, variables)}"))
    for message in attribute_problems(tree, variables):
        attribute = message.split("'")[1]
        problems.append((_line_of(source, attribute), message))
    return sorted(problems)


def render(source: str, html: bool, context: Mapping[str, Any]) -> str:
    return environment(html).from_string(source).render(**context)


def _line_of(source: str, word: str) -> int:
    """Jinja's AST keeps line numbers only for some nodes; the first mention is close enough."""
    for number, line in enumerate(source.splitlines(), start=1):
        if word in line:
            return number
    return 1
