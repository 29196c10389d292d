"""The events service against its own OpenAPI spec: schemathesis generates requests from /openapi.json
(valid and invalid bodies, odd paths and tokens) and sends them over real HTTP; no answer may be a server
error, and every answer must match the spec (status code, content type, body schema). The analytics
routes it mounts are run again over the analytics data set, with selectors that match it and dates of
any year and zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from analytics_support import loaded_database
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import add_account, add_person, serving

from engine.db import init_db, make_engine
from engine.service import auth
from engine.service.app import ServiceConfig, create_app
from engine.tracking import Tokens

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
TOKENS = Tokens(b"openapi-secret-0123456789abcdef-0123456789", "http://links.example")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder: Path = tmp_path_factory.mktemp("openapi")
    engine = make_engine(f"sqlite:///{folder / 'journey.db'}")
    init_db(engine)
    add_account(engine)
    add_person(engine, "acme-corp", "ana@acme-corp.example")
    key = auth.create_key(engine, "schemathesis").key
    with serving(create_app(ServiceConfig(engine, tokens=TOKENS))) as url:
        yield url, key
    engine.dispose()


@pytest.fixture(scope="module")
def analytics_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The app over the analytics data set (tests/analytics_data.py), so that reports have rows to count."""
    with loaded_database("sqlite", tmp_path_factory.mktemp("openapi-analytics"), None) as engine:
        key = auth.create_key(engine, "schemathesis").key
        with serving(create_app(ServiceConfig(engine, tokens=TOKENS))) as url:
            yield url, key


def _spec() -> dict[str, object]:
    """The spec the app serves at /openapi.json (which depends on no data, so any database will do)."""
    return create_app(ServiceConfig(make_engine("sqlite://"))).openapi()


schema = schemathesis.openapi.from_dict(_spec())


def test_spec_is_what_is_served(served: tuple[str, str]) -> None:
    """The spec the property test uses is the one clients download."""
    assert httpx.get(f"{served[0]}/openapi.json").json() == _spec()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_spec(case: schemathesis.Case, served: tuple[str, str]) -> None:
    """Authenticated requests of every shape: per-event verdicts or a Problem, never a 500."""
    case.call_and_validate(base_url=served[0], headers={"authorization": f"Bearer {served[1]}"}, checks=CHECKS)


# Values the analytics data set holds, so that generated requests reach the reports rather than stop at
# "unknown event type"; and moments of any year in any zone, where converting to UTC can leave the calendar.
SELECTORS = ["form_fill", "web_visit", "opportunity_created", "form_fill where event.form == 'lead-step-1'"]
KNOWN: dict[str, list[str]] = {
    "step": SELECTORS,
    "include": SELECTORS,
    "return": SELECTORS,
    "starts_with": SELECTORS,
    "ends_with": SELECTORS,
    "account": ["acme", "globex", "umbrella"],
    "journey": ["ai-seed-abm"],
    "solution_interest": ["ai-seeds", "irrigation"],
    "dimension": ["type", "content_type", "form"],
}
ZONES = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23)))
MOMENTS = st.one_of(
    st.dates().map(str),
    st.datetimes(timezones=ZONES).map(datetime.isoformat),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-01-07", "2026-03-01"]),
    st.just(datetime.now(UTC).isoformat()),
)


def _analytics_query(_: object, query: dict[str, Any] | None) -> st.SearchStrategy[dict[str, Any] | None]:
    """Each generated parameter kept, or replaced by a value the data set holds (a date for since/until)."""
    if not query:
        return st.just(query)
    choices: dict[str, st.SearchStrategy[Any]] = {}
    for name, value in query.items():
        if name in ("since", "until"):
            choices[name] = st.one_of(st.just(value), MOMENTS)
        elif name == "step":
            choices[name] = st.one_of(st.just(value), st.lists(st.sampled_from(SELECTORS), min_size=1, max_size=3))
        elif name in KNOWN:
            choices[name] = st.one_of(st.just(value), st.sampled_from(KNOWN[name]))
        else:
            choices[name] = st.just(value)
    return st.fixed_dictionaries(choices)


@schema.hooks.apply(_analytics_query, name="flatmap_query")
@schema.include(path_regex="^/analytics/").parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_analytics_answers_match_the_spec(case: schemathesis.Case, analytics_served: tuple[str, str]) -> None:
    """The analytics routes as the service mounts them, over data: a page, its JSON or a Problem, never a 500."""
    url, key = analytics_served
    case.call_and_validate(base_url=url, headers={"authorization": f"Bearer {key}"}, checks=CHECKS)
