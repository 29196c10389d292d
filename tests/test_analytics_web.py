"""The analytics router, served by uvicorn on a loopback port and read with httpx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from analytics_support import loaded_database
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from support import serving

from engine.analytics.canvas import canvas
from engine.analytics.choices import Container
from engine.analytics.containers import Filters
from engine.analytics.selectors import parse_selector
from engine.analytics.web import analytics_engine, router

STEP_1 = "form_fill where event.form == 'lead-step-1'"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with loaded_database("sqlite", tmp_path_factory.mktemp("web"), None) as engine:
        yield engine


@pytest.fixture(scope="module")
def base_url(engine: Engine) -> Iterator[str]:
    """A FastAPI app that mounts the router, as the events service does, on a real server."""
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[analytics_engine] = lambda: engine
    with serving(app) as url:
        yield url


def page_queries() -> list[tuple[str, dict[str, str | list[str]]]]:
    return [
        ("canvas", {"step": [STEP_1, "opportunity_created"]}),
        ("cohort", {"include": "form_fill", "return": "web_visit", "grain": "week", "periods": "3"}),
        ("flow", {"ends_with": "form_fill", "dimension": "content_type", "container": "person", "columns": "3"}),
        ("nodes", {"journey": "ai-seed-abm"}),
        ("timeline", {"account": "globex", "solution_interest": "ai-seeds"}),
    ]


class TestRouter:
    """Each report is a page (and JSON) under /analytics/..., with the query parameters the CLI has as options."""

    @pytest.mark.parametrize(("report", "params"), page_queries())
    def test_page(self, base_url: str, report: str, params: dict[str, str | list[str]]) -> None:
        response = httpx.get(f"{base_url}/analytics/{report}", params=params, timeout=30)
        assert (response.status_code, response.headers["content-type"]) == (200, "text/html; charset=utf-8")
        assert f'<body data-report="{report}">' in response.text
        assert "<script src=" not in response.text

    def test_json_is_the_report(self, base_url: str, engine: Engine) -> None:
        params = {"step": [STEP_1, "opportunity_created"], "container": "buying_group", "since": "2026-01-07"}
        response = httpx.get(f"{base_url}/analytics/canvas", params={**params, "format": "json"}, timeout=30)
        expected = canvas(
            engine,
            [parse_selector(STEP_1), parse_selector("opportunity_created")],
            Container.buying_group,
            Filters(since=datetime(2026, 1, 7, tzinfo=UTC)),
        )
        assert response.json() == expected.as_json()
        assert [step["containers"] for step in response.json()["steps"]] == [1, 1]

    @pytest.mark.parametrize(
        ("report", "params", "detail"),
        [
            ("canvas", {"step": "form_fil"}, "selector 'form_fil': unknown event type 'form_fil'"),
            ("flow", {"dimension": "type"}, "give exactly one of starts_with, ends_with and contains"),
            ("timeline", {"account": "acme", "since": "yesterday"}, "since 'yesterday' is not a date"),
        ],
    )
    def test_bad_request(self, base_url: str, report: str, params: dict[str, str], detail: str) -> None:
        response = httpx.get(f"{base_url}/analytics/{report}", params=params, timeout=30)
        assert response.status_code == 400
        assert response.json()["detail"].startswith(detail)


def test_counts_past_what_a_database_compares_are_refused(base_url: str) -> None:
    """A schemathesis find: include_min past 64 bits was a 500 (the database could not bind it); now a 422."""
    params = {"include": "form_fill", "return": "form_fill", "include_min": str(2**67), "grain": "day"}
    response = httpx.get(f"{base_url}/analytics/cohort", params=params, timeout=30)
    assert response.status_code == 422
    assert "1000000" in response.text


def test_pages_work_without_network(base_url: str) -> None:
    """The page embeds plotly.js itself: no <script src=...> pointing anywhere."""
    text = httpx.get(f"{base_url}/analytics/nodes", params={"journey": "ai-seed-abm"}, timeout=30).text
    assert "<script src=" not in text and "Plotly.newPlot" in text
