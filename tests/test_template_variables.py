"""A template's variables, found without compiling it when it has no statements (every subject line), are the
ones Jinja's own analysis finds (issue 16)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import meta
from jinja2.exceptions import TemplateError

from engine.language import templates

ATOMS = [
    *("account.name", "person", "x", "y.z", "range", "self", "loop", "caller", "varargs", "kwargs", "lipsum"),
    *("namespace", "joiner()", "x | upper", "x is defined", "a if b else c", "[a, b]", "{'k': v}", "f(x, *args, **kw)"),
    *("super()", "'text'", "1"),
]
PIECES = [
    *("Hello ", "\n", "{{ @ }}", "{{ @ ~ @ }}", "{{- @ -}}"),
    *("{% set a = @ %}", "{% for i in @ %}{{ i }}{{ loop.index }}{% endfor %}", "{% if @ %}yes{% endif %}"),
    *("{% macro m(p) %}{{ p }}{{ @ }}{% endmacro %}", "{% with w = @ %}{{ w }}{% endwith %}", "{# @ #}"),
]
pieces = st.tuples(st.sampled_from(PIECES), st.sampled_from(ATOMS), st.sampled_from(ATOMS)).map(
    lambda chosen: chosen[0].replace("@", chosen[1], 1).replace("@", chosen[2])
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pieces, min_size=1, max_size=5).map("".join), st.booleans())
def test_same_variables_as_jinja(source: str, html: bool) -> None:
    env = templates.environment(html)
    try:
        expected = meta.find_undeclared_variables(env.parse(source))
    except TemplateError:
        return
    assert templates._undeclared(env.parse(source), env) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Step 3 for {{ account.name }}", {"account"}),
        ("{{ self }} {{ range(3) | join }} {{ person.first_name }}", {"person"}),
        ("{% set company = account.name %}{{ company }} {{ person.email }}", {"account", "person"}),
    ],
)
def test_subject_lines(source: str, expected: set[str]) -> None:
    env = templates.environment(False)
    assert templates._undeclared(env.parse(source), env) == expected
