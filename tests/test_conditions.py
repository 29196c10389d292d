"""The expression language: what it evaluates, what it refuses at validation, and what it never allows."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from engine.language import conditions
from engine.language.conditions import (
    ACCOUNT_FIELDS,
    PERSON_FIELDS,
    Scope,
    check,
    compile_condition,
    environment,
)
from engine.language.errors import ExpressionError, ExpressionLimitError

ROLES = Scope({"person": PERSON_FIELDS, "account": ACCOUNT_FIELDS}, "role rules")
AUDIENCE = Scope({"account": ACCOUNT_FIELDS}, "audience conditions")


def holds(source: str, scope: Scope = ROLES, **context: object) -> bool:
    return compile_condition(source, scope).evaluate(**context)


class TestEvaluation:
    """Conditions read like the brief and give the answers a marketer expects."""

    def test_audience(self) -> None:
        """List membership and numeric comparison, as in the brief's audience."""
        source = "account.industry in ['Agriculture', 'Biotech'] and account.employees >= 200"
        assert holds(source, AUDIENCE, account={"industry": "Biotech", "employees": 250})
        assert not holds(source, AUDIENCE, account={"industry": "Retail", "employees": 250})
        assert not holds(source, AUDIENCE, account={"industry": "Biotech", "employees": 199})

    def test_regex_literals_are_raw(self) -> None:
        """'\\b' in a pattern is a word boundary, not a backspace: string literals are raw."""
        source = r"person.job_title is matching('(?i)\b(ceo|cto|vp)\b')"
        assert holds(source, person={"job_title": "VP of Engineering"})
        assert holds(source, person={"job_title": "Co-founder & CTO"})
        assert not holds(source, person={"job_title": "Developer Advocate"})

    def test_escaped_quote_in_literal(self) -> None:
        """A quote can still be escaped inside a literal."""
        assert holds(r"account.name == 'O\'Brien Farms'", AUDIENCE, account={"name": "O'Brien Farms"})

    def test_lower_filter_and_substring(self) -> None:
        """The role rule of the brief: substring tests on a lower-cased title."""
        source = "'engineer' in person.job_title | lower or 'architect' in person.job_title | lower"
        assert holds(source, person={"job_title": "Senior Software ENGINEER"})
        assert not holds(source, person={"job_title": "Sales Director"})

    def test_missing_values_are_false(self) -> None:
        """A missing or null value fails every comparison instead of failing the journey."""
        for account in ({}, {"annual_revenue": None}):
            assert not holds("account.annual_revenue >= 50000000", AUDIENCE, account=account)
            assert not holds("account.annual_revenue < 50000000", AUDIENCE, account=account)
        assert holds("account.annual_revenue is none", AUDIENCE, account={"annual_revenue": None})
        assert not holds("account.attributes.tier.level > 2", AUDIENCE, account={"attributes": {}})

    def test_dates(self) -> None:
        """ISO dates compare as dates; `now` is given by the caller, so results are reproducible."""
        now = datetime(2026, 11, 22, tzinfo=UTC)
        source = "account.created_at | date > now - days(30)"
        assert holds(source, AUDIENCE, account={"created_at": "2026-11-01T10:00:00"}, now=now)
        assert not holds(source, AUDIENCE, account={"created_at": "2026-09-01"}, now=now)
        assert holds("date('2026-01-02') > date('2026-01-01')", AUDIENCE)

    def test_deterministic(self) -> None:
        """The same data gives the same answer every time."""
        condition = compile_condition("account.employees * 2 > 100 and account.name | length > 3", AUDIENCE)
        answers = {condition.evaluate(account={"employees": 60, "name": "Acme"}) for _ in range(50)}
        assert answers == {True}

    def test_runtime_error_is_expression_error(self) -> None:
        """Arithmetic on text fails as an ExpressionError naming the expression."""
        condition = compile_condition("account.name - 1 > 0", AUDIENCE)
        with pytest.raises(ExpressionError, match=re.escape("expression 'account.name - 1 > 0' failed")):
            condition.evaluate(account={"name": "Acme"})


class TestValidation:
    """Problems are found when the journey is validated, with a suggestion where one helps."""

    @pytest.mark.parametrize(
        ("source", "problem"),
        [
            ("account.industy == 'x'", "unknown attribute 'account.industy' (did you mean 'industry'?)"),
            ("acount.name == 'x'", "unknown name 'acount' (did you mean 'account'?)"),
            ("account.name |lowr", "unknown filter 'lowr' (did you mean 'lower'?)"),
            ("account.name is matchin('x')", "unknown test 'matchin' (did you mean 'matching'?)"),
            (
                "account.name is matching('(')",
                "invalid regular expression '(': missing ): (",
            ),
            ("account.name ==", "invalid expression 'account.name ==': unexpected end of expression"),
            (
                "account.name == 'a' account.id",
                "invalid expression 'account.name == 'a' account.id': unexpected 'account' after the expression",
            ),
        ],
    )
    def test_problem(self, source: str, problem: str) -> None:
        """Each mistake gets exactly one clear message."""
        assert check(source, AUDIENCE) == [problem]

    def test_scope(self) -> None:
        """A variable that exists elsewhere but not here is named as such."""
        expected = ["'event' is not available in audience conditions (use 'account')"]
        assert check("event.form == 'x'", AUDIENCE) == expected

    def test_free_form_attributes(self) -> None:
        """`attributes` holds free-form data: its keys are not checked."""
        assert check("account.attributes.anything_at_all > 3", AUDIENCE) == []


class TestSafety:
    """Expressions read the data they are given and nothing else; they never run code."""

    @pytest.mark.parametrize(
        "source",
        [
            "account.__class__",
            "account.name.__class__.__mro__",
            "().__class__.__bases__[0].__subclasses__()",
            "account.name.upper()",
            "'{0.__class__}'.format(account)",
            "cycler.__init__.__globals__.os.popen('id').read()",
            "lipsum.__globals__",
            "range(10**9) | list",
            "self.__init__",
            "config.items()",
        ],
    )
    def test_refused_at_validation(self, source: str) -> None:
        """Private attributes, method calls and Jinja's own globals are refused before anything runs."""
        assert check(source, AUDIENCE) != []
        with pytest.raises(ExpressionError):
            compile_condition(source, AUDIENCE)

    @pytest.mark.parametrize(
        "source",
        [
            "account.__class__",
            "account.items",
            "account.name.upper",
            "account.keys",
            "account.get",
        ],
    )
    def test_no_attribute_beyond_data(self, source: str) -> None:
        """Even compiled without the checks, only mapping keys are read: Python attributes come back missing."""
        compiled = conditions._compiled(source)
        result = compiled(account={"name": "Acme", "items": None})
        assert isinstance(result, conditions.Missing)

    def test_no_call_beyond_helpers(self) -> None:
        """Even compiled without the checks, calling a method of the data is refused by the sandbox."""
        compiled = conditions._compiled("account.name.upper()")
        with pytest.raises(Exception, match=r"undefined|not safely callable"):
            compiled(account={"name": "Acme"})

    def test_environment_is_curated(self) -> None:
        """Only chosen filters and globals exist: no attr(), map(), format() or range()."""
        env = environment()
        assert not {"attr", "map", "format", "selectattr", "xmlattr"} & set(env.filters)
        assert set(env.globals) == {"date", "days", "hours"}


class TestBoundedWork:
    """No expression can take unbounded time or memory: refused at validation when constant, at run time
    otherwise, always within a second (issue 13)."""

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ("9 ** (9 ** 9) > 1", "9 ** 387420489 is too large (limit: about 4096 bits)"),
            ("'a' * 999999999 == 'b'", "repeating a value 999999999 times builds more than 100,000 items"),
            ("('%0999999999d' % 1) == 'x'", "'%' formatting of text is not available; use '~' to join text"),
            ("(2 ** 4000) * (2 ** 4000) > 1", "a product larger than 4096 bits"),
        ],
    )
    def test_constant_blowups_are_refused_at_validation(self, source: str, message: str) -> None:
        # CPU time, here and below: the bound is on the work, and a busy machine only adds waiting to wall time.
        started = time.process_time()
        assert check(source, AUDIENCE) == [message]
        assert time.process_time() - started < 1

    @pytest.mark.parametrize(
        ("source", "account"),
        [
            ("9 ** account.employees > 1", {"employees": 10**9}),
            ("account.name * account.employees == 'x'", {"name": "ab", "employees": 10**8}),
            ("(account.name | replace('', account.name)) == 'x'", {"name": "a" * 50_000}),
            ("(account.name | join(account.name)) == 'x'", {"name": "a" * 5_000}),
        ],
    )
    def test_data_driven_blowups_fail_fast(self, source: str, account: dict[str, object]) -> None:
        condition = compile_condition(source, AUDIENCE)
        started = time.process_time()
        with pytest.raises(ExpressionLimitError):
            condition.evaluate(account=account)
        assert time.process_time() - started < 1

    def test_catastrophic_regex_is_linear(self) -> None:
        """The classic (a+)+$ over 'aaa…a!' backtracks for ages in Python's re; RE2 answers at once."""
        condition = compile_condition("account.name is matching('^(a+)+$')", AUDIENCE)
        started = time.process_time()
        assert not condition.evaluate(account={"name": "a" * 100_000 + "!"})
        assert time.process_time() - started < 1

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ("(" * 2000 + "1" + ")" * 2000 + " > 0", "longer than 2,000 characters"),
            (" and ".join(["account.employees > 1"] * 20_000), "longer than 2,000 characters"),
            ("(" * 30 + "1" + ")" * 30 + " > 0", "brackets nested more than 24 levels deep"),
            ("not " * 200 + "account.name", "nested more than 24 levels deep: split it into simpler conditions"),
            (
                "account.name is matching('(?<=a)b')",
                "invalid regular expression '(?<=a)b': invalid perl operator: (?<= "
                "(RE2 syntax: look-arounds and back-references are not supported)",
            ),
            ("account.name == '\x00'", "contains a NUL character"),
        ],
    )
    def test_oversized_sources_are_refused_unparsed(self, source: str, message: str) -> None:
        started = time.process_time()
        [problem] = check(source, AUDIENCE)
        assert problem.endswith(message), problem
        assert time.process_time() - started < 1
