"""The email report (`journey analytics email`): hand-computed tables on SQLite and PostgreSQL, the same JSON
from the CLI and the web, the page's numbers in Chromium, and real emails whose opens, clicks and unsubscribe
come back through the tracking links."""

from __future__ import annotations

import email
import email.policy
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import chromium, dump_dom
from email_data import (
    DAY_1,
    DAY_1_ROW,
    DAY_2,
    DAY_2_ROW,
    EMAIL_A,
    EMAIL_B,
    NUDGE,
    REMIND,
    TOTAL,
    VARIANTS,
    WELCOME_TOTAL,
    counts,
    load_email_data,
)
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import SmtpInbox, add_account, add_person, serving, start, write_journey
from temporalio.testing import WorkflowEnvironment
from test_analytics_browser import TablesOnPage
from typer.testing import CliRunner

from activities.delivery import SmtpDelivery
from engine.analytics import email_report as email_module
from engine.analytics.containers import Filters
from engine.analytics.email_report import email_report
from engine.analytics.errors import AnalyticsError
from engine.analytics.timing import parse_moment
from engine.analytics.web import analytics_engine, router
from engine.cli import app
from engine.db import ActivityEvent, OutboxMessage
from engine.language import variants
from engine.runtime import publish
from engine.runtime.workers import running_worker
from engine.service import serve
from engine.service.app import ServiceConfig, create_app
from engine.service.serve import free_port
from engine.tracking import Tokens


@pytest.fixture
def loaded(engine: Engine, tmp_path: Path) -> Engine:
    load_email_data(engine, tmp_path / "journeys")
    return engine


def since(day: str) -> Filters:
    return Filters(since=parse_moment(day, "--since"))


class TestHandComputed:
    """Every table of the report equals the one worked out by hand in tests/email_data.py."""

    def test_every_journey(self, loaded: Engine) -> None:
        """Totals, per journey, node and day; the three events naming no message counted apart."""
        report = email_report(loaded, None, Filters()).as_json()
        assert report["totals"] == counts(**TOTAL)
        assert report["journeys"] == [counts(journey="renewal", **REMIND), counts(journey="welcome", **WELCOME_TOTAL)]
        assert report["nodes"] == [
            counts(journey="renewal", node="remind", **REMIND),
            counts(journey="welcome", node="email_a", **EMAIL_A),
            counts(journey="welcome", node="email_b", **EMAIL_B),
            counts(journey="welcome", node="nudge", **NUDGE),
        ]
        assert report["days"] == [counts(day=DAY_1, **DAY_1_ROW), counts(day=DAY_2, **DAY_2_ROW)]
        assert (report["variants"], report["split"], report["days_left_out"]) == ([], None, 0)
        assert report["unattributed"] == {"opens": 1, "clicks": 1, "unsubscribes": 1}
        # Its temporary table goes with it: the pooled connection builds the report again as before.
        assert email_report(loaded, None, Filters()).as_json() == report

    def test_one_journey_by_variant(self, loaded: Engine) -> None:
        """A journey with one variant_split is broken down by it: the variant each message's account was given."""
        report = email_report(loaded, "welcome", Filters()).as_json()
        assert (report["split"], report["splits"]) == ("ab", ["ab"])
        assert report["totals"] == counts(**WELCOME_TOTAL)
        assert [row["node"] for row in report["nodes"]] == ["email_a", "email_b", "nudge"]
        assert report["variants"] == VARIANTS
        day_1 = counts(day=DAY_1, sent=3, opened=3, opens=5, clicked=2, clicks=3, ctor=66.7)
        assert report["days"] == [day_1, counts(day=DAY_2, **NUDGE)]
        assert report["unattributed"] == {"opens": 1, "clicks": 0, "unsubscribes": 0}  # its payload names welcome

    def test_one_node(self, loaded: Engine) -> None:
        report = email_report(loaded, "welcome", Filters(), node="nudge").as_json()
        assert report["totals"] == counts(**NUDGE)
        assert report["nodes"] == [counts(journey="welcome", node="nudge", **NUDGE)]
        assert [row["variant"] for row in report["variants"]] == ["A", "B", "(no variant)"]
        assert report["days"] == [counts(day=DAY_2, **NUDGE)]
        assert report["unattributed"] == {"opens": 1, "clicks": 0, "unsubscribes": 0}

    def test_window_bounds_the_sending(self, loaded: Engine) -> None:
        """--since/--until choose messages by when they were sent; r1's open on day 2 stays with day 1's r1."""
        later = email_report(loaded, None, since(DAY_2)).as_json()
        assert later["totals"] == counts(**DAY_2_ROW)
        assert later["days"] == [counts(day=DAY_2, **DAY_2_ROW)]
        assert later["unattributed"] == {"opens": 0, "clicks": 1, "unsubscribes": 1}  # by when they happened
        earlier = email_report(loaded, None, Filters(until=parse_moment(DAY_2, "--until"))).as_json()
        assert earlier["totals"] == counts(**DAY_1_ROW)
        assert earlier["unattributed"] == {"opens": 1, "clicks": 0, "unsubscribes": 0}

    def test_days_are_bounded(self, loaded: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        """Past MOST_DAYS the latest days are listed, the others counted as left out; the totals keep them."""
        monkeypatch.setattr(email_module, "MOST_DAYS", 1)
        report = email_report(loaded, None, Filters()).as_json()
        assert (report["days"], report["days_left_out"]) == ([counts(day=DAY_2, **DAY_2_ROW)], 1)
        assert report["totals"] == counts(**TOTAL)

    def test_outbox_only_journey(self, loaded: Engine) -> None:
        """A journey never published but with outbox rows is known; it has no A/B test to break down by."""
        report = email_report(loaded, "renewal", Filters()).as_json()
        assert (report["totals"], report["split"], report["variants"]) == (counts(**REMIND), None, [])


class TestRefused:
    """A name that matches nothing is refused with the closest known one."""

    @pytest.mark.parametrize(
        ("journey", "node", "split", "message"),
        [
            ("welcom", None, None, "unknown journey 'welcom' (did you mean 'welcome'?)"),
            (
                "welcome",
                "nudg",
                None,
                "journey 'welcome' has no node 'nudg' (did you mean 'nudge'?) "
                "(its nodes: ab, done, email_a, email_b, nudge)",
            ),
            (None, "nudge", None, "--node needs a journey: node ids belong to one journey (give JOURNEY first)"),
            (None, None, "ab", "--split needs a journey: an A/B test belongs to one journey (give JOURNEY first)"),
            ("welcome", None, "abc", "journey 'welcome' has no variant_split 'abc' (did you mean 'ab'?) "),
        ],
    )
    def test_unknown_names(
        self, loaded: Engine, journey: str | None, node: str | None, split: str | None, message: str
    ) -> None:
        with pytest.raises(AnalyticsError) as refused:
            email_report(loaded, journey, Filters(), node, split)
        assert str(refused.value).startswith(message)

    def test_cli_and_web_refuse_alike(self, loaded: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        """Exit 1 with the reason on the command line, 400 with it on the web; never a traceback."""
        monkeypatch.setenv("JOURNEY_DATABASE_URL", loaded.url.render_as_string(hide_password=False))
        printed = CliRunner().invoke(app, ["analytics", "email", "welcome", "--node", "nudg"])
        assert printed.exit_code == 1
        assert "has no node 'nudg' (did you mean 'nudge'?)" in printed.stderr
        with web(loaded) as client:
            answer = client.get("/analytics/email", params={"journey": "welcome", "node": "nudg"})
            backwards = client.get("/analytics/email", params={"since": DAY_2, "until": DAY_1})
        assert answer.status_code == 400 and "did you mean 'nudge'?" in answer.json()["detail"]
        assert backwards.status_code == 400 and "must be before until" in backwards.json()["detail"]


@contextmanager
def web(engine: Engine) -> Iterator[httpx.Client]:
    """The /analytics router over real HTTP, reading `engine`."""
    service = FastAPI()
    service.include_router(router)
    service.dependency_overrides[analytics_engine] = lambda: engine
    with serving(service) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.mark.parametrize(
    ("arguments", "params"),
    [
        ([], {}),
        (["welcome", "--since", DAY_2], {"journey": "welcome", "since": DAY_2}),
        (["welcome", "--node", "email_a", "--split", "ab"], {"journey": "welcome", "node": "email_a", "split": "ab"}),
    ],
)
def test_web_json_equals_cli_json(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch, arguments: list[str], params: dict[str, str]
) -> None:
    monkeypatch.setenv("JOURNEY_DATABASE_URL", loaded.url.render_as_string(hide_password=False))
    printed = CliRunner().invoke(app, ["analytics", "email", *arguments, "--json"])
    assert printed.exit_code == 0, printed.output
    with web(loaded) as client:
        answer = client.get("/analytics/email", params={**params, "format": "json"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == json.loads(printed.stdout)
    assert json.loads(printed.stdout)["totals"]["sent"] > 0


def page_tables(report: dict[str, Any]) -> dict[str, list[list[Any]]]:
    """What the page must show, read from --json: the columns of engine/analytics/email_views.py."""

    def cells(row: dict[str, Any]) -> list[Any]:
        held = ", ".join(f"{reason}: {count}" for reason, count in row["suppressed_by"].items())
        names = ["unique_opens", "total_opens", "unique_clicks", "total_clicks", "click_to_open_pct", "unsubscribes"]
        return [row["sent"], row["failed"], row["pending"], row["suppressed"], held, *(row[n] for n in names)]

    left = report["unattributed"]
    return {
        "totals": [cells(report["totals"])],
        "journeys": [[r["journey"], *cells(r)] for r in report["journeys"]],
        "nodes": [[r["journey"], r["node"], *cells(r)] for r in report["nodes"]],
        "variants": [[r["variant"], r["node"], *cells(r)] for r in report["variants"]],
        "days": [[r["day"], *cells(r)] for r in report["days"]],
        "unattributed": [[left["opens"], left["clicks"], left["unsubscribes"]]],
    }


def test_page_shows_the_json_numbers(db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chromium opens the --html page: the chart is drawn offline and every table holds the --json numbers."""
    chromium()  # installs it, or skips with the reason
    load_email_data(db, tmp_path / "journeys")
    monkeypatch.setenv("JOURNEY_DATABASE_URL", db.url.render_as_string(hide_password=False))
    page = tmp_path / "analytics-email.html"
    printed = CliRunner().invoke(app, ["analytics", "email", "welcome", "--json", "--html", str(page)])
    assert printed.exit_code == 0, printed.output
    dom = dump_dom(page)
    parser = TablesOnPage()
    parser.feed(dom)
    expected = page_tables(json.loads(printed.stdout))
    assert parser.tables == expected
    assert len(expected["variants"]) == 5 and expected["totals"][0][0] == 4
    assert 'class="main-svg"' in dom  # plotly ran from the page itself


SECRET = "email-report-tracking-secret-of-32-bytes-or-more"
NEWS = """
- id: ab
  type: variant_split
  salt: "s1"
  variants:
    - {name: A, percent: 50, next: email_a}
    - {name: B, percent: 50, next: email_b}
- id: email_a
  type: send_email
  to: all
  subject: "News A"
  template: emails/news.html.j2
  next: done
- id: email_b
  type: send_email
  to: all
  subject: "News B"
  template: emails/news.html.j2
  next: done
- id: done
  type: end
"""
NEWS_HTML = (
    '<html><body><p>Hi {{ person.first_name }}</p><p><a href="https://acme.example/pricing">See pricing</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>\n'
)


@dataclass(frozen=True)
class Tracked:
    task_queue: str
    inbox: SmtpInbox
    url: str  # the service's public URL, which the emails link to


@pytest.fixture
async def tracked(
    time_env: WorkflowEnvironment, db: Engine, smtp: tuple[str, SmtpInbox], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Tracked]:
    """A worker mailing the real SMTP server with tracking on, and `journey serve`'s app at the links' address."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("JOURNEY_PUBLIC_URL", public)
    monkeypatch.setenv("JOURNEY_TRACKING_SECRET", SECRET)
    task_queue = f"email-report-{uuid.uuid4()}"
    service = create_app(ServiceConfig(db, tokens=Tokens(SECRET.encode(), public)))
    async with (
        running_worker(time_env.client, db, SmtpDelivery(smtp[0]), task_queue),
        serve.serving(service, port=port),
    ):
        yield Tracked(task_queue, smtp[1], public)


def links(raw: bytes, public: str) -> dict[str, str]:
    """The open pixel, the tracked link and the one-click unsubscribe URL of a received message."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("html",))
    assert body is not None
    html = body.get_content()
    pixel = re.search(r'<img src="([^"]+)"', html)
    click = re.search(r'href="(' + re.escape(public) + r'/t/c/[^"]+)"', html)
    assert pixel is not None and click is not None, html
    one_click = str(message["List-Unsubscribe"]).split(",")[0].strip(" <>")
    return {"pixel": pixel.group(1), "click": click.group(1), "unsubscribe": one_click}


async def test_tracked_emails_end_to_end(
    time_env: WorkflowEnvironment, db: Engine, tracked: Tracked, tmp_path: Path
) -> None:
    """Emails sent by a journey's A/B test through real SMTP; opened (twice: recorded once), clicked (once
    without the pixel) and unsubscribed from by their own links over HTTP; the report counts exactly that."""
    plan = write_journey(tmp_path, NEWS, "ab", journey="news", templates={"emails/news.html.j2": NEWS_HTML})
    publish.store_version(db, plan)
    given = {
        name: next(f"acct-{n}" for n in range(100) if variants.assign("news", f"acct-{n}", "ab", "s1", [50, 50]) == i)
        for i, name in enumerate(("A", "B"))
    }
    add_account(db, given["A"])
    add_account(db, given["B"])
    people = {
        "ana": add_person(db, given["A"], f"ana@{given['A']}.example", first_name="Ana"),
        "ben": add_person(db, given["A"], f"ben@{given['A']}.example", first_name="Ben"),
        "cy": add_person(db, given["B"], f"cy@{given['B']}.example", first_name="Cy"),
    }
    for account in given.values():
        await (await start(time_env.client, plan, tracked.task_queue, account)).result()
    received = {rcpts[0].partition("@")[0]: links(raw, tracked.url) for rcpts, raw in tracked.inbox.messages}
    assert sorted(received) == ["ana", "ben", "cy"]
    async with httpx.AsyncClient() as http:
        answers = [
            await http.get(received["ana"]["pixel"]),
            await http.get(received["ana"]["pixel"]),  # the same open again: recorded once per message
            await http.get(received["ana"]["click"]),
            await http.get(received["ben"]["click"]),  # images blocked: a click, no open
            await http.get(received["cy"]["pixel"]),
            await http.post(received["cy"]["unsubscribe"], data={"List-Unsubscribe": "One-Click"}),
        ]
    assert [answer.status_code for answer in answers] == [200, 200, 302, 302, 200, 200]
    with Session(db) as session:
        sent_on = {row.created_at.date().isoformat() for row in session.exec(select(OutboxMessage)).all()}
        unsubscribed = session.exec(select(ActivityEvent).where(ActivityEvent.type == "unsubscribed")).one()
    assert unsubscribed.person_id == people["cy"]
    assert unsubscribed.payload["node"] == "email_b"  # the link named the message it came in
    [day] = sent_on
    report = email_report(db, "news", Filters()).as_json()
    email_a: dict[str, Any] = dict(sent=2, opened=2, opens=2, clicked=2, clicks=2, ctor=100.0)
    email_b: dict[str, Any] = dict(sent=1, opened=1, opens=1, ctor=0.0, unsubscribes=1)
    assert report["nodes"] == [
        counts(journey="news", node="email_a", **email_a),
        counts(journey="news", node="email_b", **email_b),
    ]
    assert report["variants"] == [
        counts(variant="A", node="email_a", **email_a),
        counts(variant="B", node="email_b", **email_b),
    ]
    total: dict[str, Any] = dict(sent=3, opened=3, opens=3, clicked=2, clicks=2, ctor=66.7, unsubscribes=1)
    assert report["days"] == [counts(day=day, **total)]
    assert report["unattributed"] == {"opens": 0, "clicks": 0, "unsubscribes": 0}
