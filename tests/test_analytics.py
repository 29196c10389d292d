"""The analytics reports over the hand-made data set (tests/analytics_data.py), on SQLite and PostgreSQL.

Every expected table below was worked out by hand from the data set's docstring and event list.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from analytics_support import loaded_database
from sqlalchemy.engine import Engine

from engine.analytics.canvas import canvas
from engine.analytics.choices import Container, Direction, Grain, Repeats
from engine.analytics.cohort import cohort
from engine.analytics.containers import Filters
from engine.analytics.errors import AnalyticsError, SelectorError
from engine.analytics.flow import flow
from engine.analytics.nodes import node_counts
from engine.analytics.selectors import parse_selector
from engine.analytics.timeline import timeline

NONE = Filters()
STEP_1 = "form_fill where event.form == 'lead-step-1'"
STEP_2 = "form_fill where event.form == 'lead-step-2'"
CLOSED_WON = "opportunity_stage_changed where event.stage == 'closed_won'"
DAY = 86_400


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with loaded_database(request.param, tmp_path_factory.mktemp(request.param), url) as engine:
        yield engine


def selectors(*texts: str) -> list[Any]:
    return [parse_selector(text) for text in texts]


def steps(report: Any) -> list[tuple[int, float | None, int, float | None, float | None]]:
    """(containers, conversion %, fallout, overall %, median seconds) per step."""
    return [
        (s.containers, s.conversion_pct, s.fallout, s.overall_pct, s.median_seconds_from_previous) for s in report.steps
    ]


class TestSelectors:
    """Selectors are checked by the journey language and refused with a message saying what to write."""

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                "form_fil",
                "selector 'form_fil': unknown event type 'form_fil' (did you mean 'form_fill'?) (known: form_fill, "
                "email_open, email_click, web_visit, person_added, person_updated, opportunity_created, "
                "opportunity_stage_changed, account_updated, buying_group_updated, member_removed, member_added, "
                "node_entered, node_left, person_path)",
            ),
            (
                "form_fill where event.fomr == 'x'",
                "selector 'form_fill where event.fomr == 'x'': unknown attribute 'event.fomr' (did you mean 'form'?)",
            ),
            (
                "form_fill where",
                "invalid selector 'form_fill where': expected an event type, optionally 'where <expression>'",
            ),
            (
                "form_fill where event.form | shout",
                "selector 'form_fill where event.form | shout': unknown filter 'shout'",
            ),
            (
                "form_fill where account.industry == 'x'",
                "selector 'form_fill where account.industry == 'x'': 'account' is not available in selectors: "
                "a selector reads the event only",
            ),
            (
                "form_fill where event.form ==",
                "selector 'form_fill where event.form ==': invalid expression 'event.form ==': "
                "unexpected end of expression",
            ),
        ],
    )
    def test_bad_selector(self, text: str, message: str) -> None:
        with pytest.raises(SelectorError) as raised:
            parse_selector(text)
        assert str(raised.value) == message


class TestCanvas:
    """A container reaches step k at its first step-k event at or after it reached step k-1."""

    def test_account_milestones_with_skipped_and_out_of_order_steps(self, engine: Engine) -> None:
        # acme does all three; globex skips step 2; initech filled step 2 before step 1 (it does not count).
        report = canvas(engine, selectors(STEP_1, STEP_2, "opportunity_created"), Container.account, NONE)
        assert steps(report) == [
            (3, 100.0, 0, 100.0, None),
            (1, 33.3, 2, 33.3, 2 * DAY),
            (1, 100.0, 0, 33.3, 2 * DAY + 2 * 3600),
        ]

    def test_person_container(self, engine: Engine) -> None:
        report = canvas(engine, selectors("web_visit", "form_fill"), Container.person, NONE)
        assert steps(report) == [(3, 100.0, 0, 100.0, None), (3, 100.0, 0, 100.0, DAY + 3600)]

    def test_buying_group_container(self, engine: Engine) -> None:
        # Members' events and account-level ones: acme/ai-seeds 4d2h, acme/irrigation 2d2h, globex/ai-seeds 7d.
        report = canvas(engine, selectors("form_fill", "opportunity_created"), Container.buying_group, NONE)
        assert steps(report) == [(3, 100.0, 0, 100.0, None), (3, 100.0, 0, 100.0, 4 * DAY + 2 * 3600)]

    def test_opportunity_container(self, engine: Engine) -> None:
        # opp-a1: 01-06 10:00 -> 02-03 12:00; opp-g1: 01-13 10:00 -> 03-02 10:00; opp-i1 never won.
        report = canvas(engine, selectors("form_fill", CLOSED_WON), Container.opportunity, NONE)
        assert steps(report) == [(3, 100.0, 0, 100.0, None), (2, 66.7, 1, 66.7, (28 * DAY + 2 * 3600 + 48 * DAY) / 2)]

    def test_a_handoff_is_an_opportunity_until_the_crm_reports_one(self, engine: Engine) -> None:
        report = canvas(engine, selectors("email_open"), Container.opportunity, NONE)
        assert steps(report) == [(1, 100.0, 0, 100.0, None)]

    def test_one_event_never_counts_for_two_steps(self, engine: Engine) -> None:
        # acme's second visit is two days and an hour after its first; globex's an hour after.
        report = canvas(engine, selectors("web_visit", "web_visit"), Container.account, NONE)
        assert steps(report) == [(2, 100.0, 0, 100.0, None), (2, 100.0, 0, 100.0, (2 * DAY + 3600 + 3600) / 2)]

    def test_empty_result(self, engine: Engine) -> None:
        report = canvas(engine, selectors("person_updated", "form_fill"), Container.account, NONE)
        assert steps(report) == [(0, None, 0, None, None), (0, None, 0, None, None)]

    def test_an_unknown_persons_event_counts_for_the_account_only(self, engine: Engine) -> None:
        counted = [canvas(engine, selectors("email_click"), kind, NONE).steps[0].containers for kind in Container]
        assert counted == [1, 1, 0, 1]  # account, buying group (account-level: no person), person, opportunity

    def test_date_range_and_solution_interest(self, engine: Engine) -> None:
        since = Filters(since=datetime(2026, 1, 13, tzinfo=UTC))
        report = canvas(engine, selectors(STEP_1, STEP_2, "opportunity_created"), Container.account, since)
        assert [step.containers for step in report.steps] == [2, 0, 0]
        both = Filters(solution_interest="ai-seeds", since=datetime(2026, 1, 13, tzinfo=UTC))
        report = canvas(engine, selectors(STEP_1, STEP_2, "opportunity_created"), Container.account, both)
        assert [step.containers for step in report.steps] == [1, 0, 0]
        assert report.filters == {"solution_interest": "ai-seeds", "since": "2026-01-13T00:00:00+00:00"}

    def test_journey_filter_keeps_the_journeys_accounts(self, engine: Engine) -> None:
        everyone = canvas(engine, selectors("form_fill"), Container.person, NONE)
        in_journey = canvas(engine, selectors("form_fill"), Container.person, Filters(journey="ai-seed-abm"))
        assert (everyone.steps[0].containers, in_journey.steps[0].containers) == (4, 3)

    @pytest.mark.parametrize(
        ("where", "people"),
        [
            ("event.form != 'lead-step-1'", 2),
            ("not (event.form == 'lead-step-1')", 2),
            ("event.form in ['lead-step-2', 'nope']", 2),
            ("event.form not in ['lead-step-2']", 3),
            ("'lead-step-1' == event.form or event.payload.form == 'lead-step-2'", 4),
            ("event.form is defined and event.payload.missing is none", 4),
            ("event.email == 'dan@initech.example'", 1),
        ],
    )
    def test_where_clauses_in_sql(self, engine: Engine, where: str, people: int) -> None:
        report = canvas(engine, selectors(f"form_fill where {where}"), Container.person, NONE)
        assert report.steps[0].containers == people

    @pytest.mark.parametrize(
        ("where", "people"),
        [
            ("event.form is matching('step-2$')", 2),
            ("event.form | upper == 'LEAD-STEP-1'", 3),
            ("event.form is matching('^lead') and event.email != 'dan@initech.example'", 3),
            ("event.form is matching('^demo')", 0),
        ],
    )
    def test_where_clauses_sql_cannot_express_are_evaluated_on_that_event_type(
        self, engine: Engine, where: str, people: int
    ) -> None:
        report = canvas(engine, selectors(f"form_fill where {where}"), Container.person, NONE)
        assert report.steps[0].containers == people

    def test_a_where_clause_failing_on_an_event_names_it(self, engine: Engine) -> None:
        with pytest.raises(AnalyticsError) as raised:
            canvas(engine, selectors("form_fill where event.form + 1 > 0"), Container.account, NONE)
        assert str(raised.value) == (
            "selector 'form_fill where event.form + 1 > 0': expression 'event.form + 1 > 0' failed: "
            "can only concatenate str (not \"int\") to str (event 'a2')"
        )

    def test_numeric_payload_field(self, engine: Engine) -> None:
        report = canvas(
            engine, selectors("node_entered where event.visit >= 1 and event.node == 'intro'"), Container.account, NONE
        )
        assert report.steps[0].containers == 2


class TestCohort:
    """Containers grouped by when they met the inclusion metric, then followed period by period."""

    def test_opportunities_won_by_month(self, engine: Engine) -> None:
        report = cohort(
            engine, *selectors("opportunity_created", CLOSED_WON), Container.account, NONE, Grain.month, periods=3
        )
        assert [(r.cohort, r.size, r.counts, r.percents) for r in report.rows] == [
            ("2026-01-01", 2, [0, 1, 1], [0.0, 50.0, 50.0]),
            ("2026-02-01", 1, [0, 0, 0], [0.0, 0.0, 0.0]),
        ]

    @pytest.mark.parametrize(
        ("rolling", "acme"),
        [(False, [1, 0, 1]), (True, [1, 0, 0])],
    )
    def test_weekly_returns_rolling_or_not(self, engine: Engine, rolling: bool, acme: list[int]) -> None:
        # acme returns in weeks 0 and 2 (not 1); globex in weeks 0 and 1; initech never.
        report = cohort(
            engine, *selectors("form_fill", "web_visit"), Container.account, NONE, Grain.week, 3, rolling=rolling
        )
        assert [(r.cohort, r.size, r.counts) for r in report.rows] == [
            ("2026-01-05", 1, acme),
            ("2026-01-12", 2, [1, 1, 0]),
        ]

    def test_inclusion_at_the_second_event(self, engine: Engine) -> None:
        report = cohort(
            engine, *selectors("web_visit", "form_fill"), Container.account, NONE, Grain.month, 2, include_min=2
        )
        assert [(r.cohort, r.size, r.counts, r.percents) for r in report.rows] == [
            ("2026-01-01", 2, [2, 0], [100.0, 0.0])
        ]
        assert report.inclusion == "web_visit >= 2"

    def test_days_and_the_inclusion_event_is_no_return(self, engine: Engine) -> None:
        # acme's first visit includes it and is not a return: its next visit is two days later. globex
        # visits again an hour after its first visit, the same day.
        report = cohort(engine, *selectors("web_visit", "web_visit"), Container.account, NONE, Grain.day, 1)
        assert [(r.cohort, r.counts) for r in report.rows] == [("2026-01-05", [0]), ("2026-01-12", [1])]

    @pytest.mark.parametrize(("return_min", "counts"), [(2, [2]), (3, [0])])
    def test_return_threshold(self, engine: Engine, return_min: int, counts: list[int]) -> None:
        # After their first form fill, acme and globex each visit twice in January; initech never.
        report = cohort(
            engine, *selectors("form_fill", "web_visit"), Container.account, NONE, Grain.month, 1, return_min=return_min
        )
        assert [(r.cohort, r.size, r.counts) for r in report.rows] == [("2026-01-01", 3, counts)]

    def test_empty(self, engine: Engine) -> None:
        report = cohort(engine, *selectors("person_updated", "web_visit"), Container.account, NONE)
        assert report.rows == []


class TestFlow:
    """Paths of one dimension from or to a milestone, with loops kept and rare values grouped as other."""

    def test_event_types_after_step_1(self, engine: Engine) -> None:
        report = flow(engine, parse_selector(STEP_1), Direction.starts_with, Container.account, NONE, "type", 4, 5)
        assert [[(v.value, v.containers) for v in c.values] for c in report.columns] == [
            [(STEP_1, 3)],
            [("web_visit", 2), ("node_left", 1)],
            [("form_fill", 1), ("node_entered", 1), ("opportunity_created", 1)],
            [("node_left", 1), ("opportunity_created", 1), ("web_visit", 1)],
        ]
        assert [(link.column, link.source, link.target, link.containers) for link in report.links] == [
            (1, STEP_1, "web_visit", 2),
            (1, STEP_1, "node_left", 1),
            (2, "node_left", "node_entered", 1),
            (2, "web_visit", "form_fill", 1),
            (2, "web_visit", "opportunity_created", 1),
            (3, "form_fill", "opportunity_created", 1),
            (3, "node_entered", "node_left", 1),
            (3, "opportunity_created", "web_visit", 1),
        ]
        assert report.containers == 3

    def test_rare_values_become_other(self, engine: Engine) -> None:
        report = flow(engine, parse_selector(STEP_1), Direction.starts_with, Container.account, NONE, "type", 4, 1)
        assert [[(v.value, v.containers) for v in c.values] for c in report.columns][1:] == [
            [("web_visit", 2), ("other", 1)],
            [("other", 2), ("form_fill", 1)],
            [("other", 2), ("node_left", 1)],
        ]

    def test_content_leading_to_a_form_fill_per_person(self, engine: Engine) -> None:
        # With repeats included, Cat's two blog visits in a row stay two steps (a loop); Dan has nothing before
        # his form fill. (Excluded, the default, they are one step: tests/test_analytics_flow_options.py.)
        report = flow(
            engine, parse_selector("form_fill"), Direction.ends_with, Container.person, NONE, "content_type", 3, 5,
            repeats=Repeats.include,
        )  # fmt: skip
        assert [[(v.value, v.containers) for v in c.values] for c in report.columns] == [
            [("blog", 1)],
            [("blog", 2), ("webinar", 1)],
            [("form_fill", 4)],
        ]
        assert [(p.steps, p.containers) for p in report.paths] == [
            (["blog", "blog", "form_fill"], 1),
            (["blog", "form_fill"], 1),
            (["form_fill"], 1),
            (["webinar", "form_fill"], 1),
        ]

    def test_journey_nodes(self, engine: Engine) -> None:
        milestone = parse_selector("node_entered where event.node == 'assign'")
        report = flow(engine, milestone, Direction.starts_with, Container.account, NONE, "node", 3, 5)
        assert [(p.steps, p.containers) for p in report.paths] == [([milestone.label, "intro", "wait_demo"], 2)]

    def test_empty(self, engine: Engine) -> None:
        report = flow(engine, parse_selector("person_updated"), Direction.starts_with, Container.account, NONE)
        assert (report.containers, report.paths, report.links) == (0, [], [])

    def test_bad_dimension(self, engine: Engine) -> None:
        with pytest.raises(AnalyticsError) as raised:
            flow(engine, parse_selector("form_fill"), Direction.starts_with, Container.account, NONE, "a.b")
        assert str(raised.value) == "invalid dimension 'a.b': use type, node or a payload field such as content_type"


def test_cohort_refuses_counts_past_its_bound(engine: Engine) -> None:
    with pytest.raises(AnalyticsError, match="at most 1,000,000 events"):
        cohort(engine, parse_selector("form_fill"), parse_selector("form_fill"), Container.account, NONE,
               include_min=2**63)  # fmt: skip


class TestNodes:
    """Per node: accounts that entered, entries (re-entries count), accounts there now, exits by branch."""

    def test_counts_on_the_journey_graph(self, engine: Engine) -> None:
        report = node_counts(engine, "ai-seed-abm", NONE)
        counts = {n.node: (n.entered, n.entries, n.now, n.left) for n in report.nodes if n.entries}
        assert counts == {
            "assign": (2, 3, 1, {"next": 2}),
            "intro": (2, 2, 0, {"next": 2}),
            "wait_demo": (2, 2, 1, {"on_timeout": 1}),
            "size_split": (1, 1, 0, {"otherwise": 1}),
            "reminder": (1, 1, 0, {"next": 1}),
            "wait_demo_again": (1, 1, 0, {"on_timeout": 1}),
            "done": (1, 1, 0, {"(ended)": 1}),
        }
        assert [n.node for n in report.nodes if not n.entries] == ["linkedin", "fill_roles", "gate", "handoff"]
        assert (report.start, len(report.edges)) == ("assign", 16)

    def test_unknown_journey_is_a_mistake(self, engine: Engine) -> None:
        """As an unknown account is for the timeline: an empty report would pass a typo off as 'nobody there'."""
        with pytest.raises(AnalyticsError, match="unknown journey 'ai-seed-abn' \\(did you mean 'ai-seed-abm'\\?\\)"):
            node_counts(engine, "ai-seed-abn", NONE)


class TestTimeline:
    """One account's or buying group's interactions in time order, with people and roles."""

    def test_buying_group(self, engine: Engine) -> None:
        report = timeline(engine, "acme", NONE, "irrigation")
        rows = [(e.occurred_at.strftime("%m-%d %H:%M"), e.type, e.person, e.roles, e.node) for e in report.entries]
        bob = ("Bob Tester", ["influencer (irrigation)"])
        assert rows == [
            ("01-05 08:00", "node_entered", None, [], "assign"),
            ("01-05 08:01", "node_left", None, [], "assign"),
            ("01-05 08:02", "node_entered", None, [], "intro"),
            ("01-05 08:03", "node_left", None, [], "intro"),
            ("01-05 08:04", "node_entered", None, [], "wait_demo"),
            ("01-07 10:00", "web_visit", *bob, None),
            ("01-08 10:00", "form_fill", *bob, None),
            ("01-10 12:00", "opportunity_created", None, [], None),
            ("02-03 12:00", "opportunity_stage_changed", None, [], None),
        ]
        assert report.entries[6].detail == "form=lead-step-2"

    def test_account_out_of_order_events_in_time_order(self, engine: Engine) -> None:
        report = timeline(engine, "initech", Filters(until=datetime(2026, 1, 16, tzinfo=UTC)))
        forms = [(e.occurred_at.day, e.detail) for e in report.entries if e.type == "form_fill"]
        assert forms == [(14, "form=lead-step-2"), (15, "form=lead-step-1")]
        assert report.entries[-1].person == "Dan Tester" and report.entries[-1].roles == []

    @pytest.mark.parametrize(
        ("account", "interest", "message"),
        [
            ("nobody", None, "unknown account 'nobody'"),
            ("acme-corp", None, "unknown account 'acme-corp' (did you mean 'acme'?)"),
            ("initech", "ai-seeds", "account 'initech' has no buying group for the solution interest 'ai-seeds'"),
        ],
    )
    def test_unknown(self, engine: Engine, account: str, interest: str | None, message: str) -> None:
        with pytest.raises(AnalyticsError) as raised:
            timeline(engine, account, NONE, interest)
        assert str(raised.value) == message


def test_same_reports_on_sqlite_and_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """Every report, as JSON, is identical on both databases."""

    def everything(engine: Engine) -> list[dict[str, Any]]:
        return [
            canvas(engine, selectors(STEP_1, STEP_2, CLOSED_WON), Container.opportunity, NONE).as_json(),
            cohort(engine, *selectors("form_fill", "web_visit"), Container.buying_group, NONE, Grain.week).as_json(),
            flow(engine, parse_selector("form_fill"), Direction.ends_with, Container.account, NONE).as_json(),
            node_counts(engine, "ai-seed-abm", NONE).as_json(),
            timeline(engine, "acme", NONE).as_json(),
        ]

    with (
        loaded_database("sqlite", tmp_path, None) as lite,
        loaded_database("postgresql", tmp_path, postgres_url) as postgres,
    ):
        assert everything(lite) == everything(postgres)
