"""Email templates: Jinja2 in a sandbox, HTML autoescaped, unknown variables fail at validation.

A template is checked when the journey is validated (syntax, names, attributes, filters), so a typo
is reported to the marketer at publish time instead of failing an email at 3 a.m.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, meta, nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.language.conditions import ACCOUNT_FIELDS, BUYING_GROUP_FIELDS, PERSON_FIELDS, attribute_problems
from engine.language.errors import did_you_mean

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
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=html, keep_trailing_newline=True, finalize=_blank_none
    )


def _blank_none(value: Any) -> Any:
    """A missing phone number prints as nothing, not as 'None'."""
    return "" if value is None else value


def is_html(name: str) -> bool:
    return name.removesuffix(".j2").endswith((".html", ".htm"))


def check(
    source: str, html: bool, account_fields: frozenset[str] = ACCOUNT_FIELDS, with_buying_group: bool = True
) -> list[tuple[int, str]]:
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
    variables = dict(TEMPLATE_VARIABLES, account=account_fields)
    if not with_buying_group:
        del variables["buying_group"]
    first_use: dict[str, int] = {}
    for name_node in tree.find_all(nodes.Name):
        if name_node.ctx == "load":
            first_use.setdefault(name_node.name, name_node.lineno)
    for name in sorted(_undeclared(tree, env)):
        if name == "buying_group" and not with_buying_group:
            message = "'buying_group' is not available: give the journey a solution_interest"
            problems.append((first_use.get(name, 1), message))
        elif name not in variables:
            message = f"unknown variable '{name}'{did_you_mean(name, variables)}"
            problems.append((first_use.get(name, 1), message))
    problems.extend(attribute_problems(tree, variables))
    return sorted(problems)


def _undeclared(tree: nodes.Template, env: ImmutableSandboxedEnvironment) -> set[str]:
    """The variables the template reads from its context. Only statements ({% set %}, {% for %}, macros, ...)
    declare names, so a template of text and {{ expressions }} (every subject line) reads the names it loads,
    but Jinja's globals and 'self'; for the others, Jinja's own analysis, which compiles the template, decides."""
    found = list(tree.find_all(nodes.Node))
    if any(isinstance(node, nodes.Stmt) and not isinstance(node, nodes.Output) for node in found):
        return meta.find_undeclared_variables(tree)
    loaded = {node.name for node in found if isinstance(node, nodes.Name) and node.ctx == "load"}
    return loaded - set(env.globals) - {"self"}


def render(source: str, html: bool, context: Mapping[str, Any]) -> str:
    return _compiled(source, html).render(**context)


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Template:
    """Compiling a template to Python costs far more than rendering it, and a worker renders the same few
    subjects and bodies for every person of every account: each is compiled once per process."""
    return environment(html).from_string(source)
