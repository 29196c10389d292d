"""The flow's walk from each anchor over the few events read near it (engine/analytics/flow_walk.py): runs of
repeats longer than a read (read further, several rounds), a read that ends exactly with the history, ties at
the anchor's instant and at the point a read carries on from; each side, each container, SQLite and PostgreSQL.

The log (2026-02-02, UTC) in recording order, so ids follow it; D is the demo form fill (the milestone), `~`
an account-level event (no person); values are the visits' content_type (the milestone and the opportunity
events have none). p1 and p3 belong to buying groups of their accounts, p2 to none; p4 is east's.
- north: 07:00 ~opportunity opp-n; 08:00 p1 webinar; 08:01-08:08 p1 blog x8; 08:09 p2 pricing;
  08:10, 08:11 p1 blog; 08:12 ~case_study; 08:13-08:15 p1 blog x3; 08:16 p1 D; 08:17 p1 blog; 08:18 p2 pricing;
  08:19 p1 webinar.
- south: 07:00 ~opportunity opp-s; 08:50-08:53 p3 blog x4; then all at 09:00: p3 pricing, p3 D, p3 webinar x7,
  p3 blog, p3 pricing; 08:59 p3 pricing (recorded late); 09:05 p3 blog.
- east: 07:00 ~opportunity opp-e; 10:00-10:03 p4 blog x4; 10:04 p4 D.

Walking outwards from each anchor (nearest first), as each container sees the log:
- p1: before blog x13, webinar; after blog, webinar.
- buying group of p1 (p1 and account-level events, not p2): before blog x3, case_study, blog x10, webinar;
  after blog, webinar.
- north, and opp-n (no event names another opportunity): before blog x3, case_study, blog x2, pricing, blog x8,
  webinar; after blog, pricing, webinar.
- p3 = its group = south = opp-s: before pricing (09:00, recorded before D), pricing (08:59), blog x4; after
  webinar x7 (09:00), blog, pricing (09:00), blog (09:05).
- p4 = its group = east = opp-e: before blog x4 (exactly a first read's four events, then nothing); after none.

With repeats excluded a read of two steps takes 4 events, then 8, 16... from where it stopped: p1's 13 blogs
take three reads; p3's webinars go on, at 09:00, after the read stopped inside that instant. Every expected
table below was worked out by hand from
these lists.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.analytics.choices import Container, Direction, Repeats
from engine.analytics.containers import Filters
from engine.analytics.flow import FlowReport, flow
from engine.analytics.selectors import parse_selector
from engine.db import Account, ActivityEvent, BuyingGroup, BuyingGroupMember, Person, SolutionInterestRecord

DEMO = "form_fill where event.form == 'demo'"
D = DEMO  # the milestone's label, as paths show it
PEOPLE = {"p1": ("north", 1), "p2": ("north", 2), "p3": ("south", 3), "p4": ("east", 4)}
GROUPS = {"north": 1, "south": 2, "east": 3}  # p2 is in none


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 2, 2, hour, minute, tzinfo=UTC)


Event = tuple[str, str | None, datetime, str, dict[str, Any]]  # account, person, time, type, payload


def visits(account: str, person: str | None, content: str, *times: datetime) -> list[Event]:
    return [(account, person, when, "web_visit", {"content_type": content}) for when in times]


def opened(account: str) -> Event:
    return (account, None, at(7, 0), "opportunity_created", {"opportunity_id": f"opp-{account[0]}"})


def demo(account: str, person: str, when: datetime) -> Event:
    return (account, person, when, "form_fill", {"form": "demo"})


NINE = at(9, 0)
EVENTS = [
    opened("north"),
    *visits("north", "p1", "webinar", at(8, 0)),
    *visits("north", "p1", "blog", *(at(8, minute) for minute in range(1, 9))),
    *visits("north", "p2", "pricing", at(8, 9)),
    *visits("north", "p1", "blog", at(8, 10), at(8, 11)),
    *visits("north", None, "case_study", at(8, 12)),
    *visits("north", "p1", "blog", at(8, 13), at(8, 14), at(8, 15)),
    demo("north", "p1", at(8, 16)),
    *visits("north", "p1", "blog", at(8, 17)),
    *visits("north", "p2", "pricing", at(8, 18)),
    *visits("north", "p1", "webinar", at(8, 19)),
    opened("south"),
    *visits("south", "p3", "blog", at(8, 50), at(8, 51), at(8, 52), at(8, 53)),
    *visits("south", "p3", "pricing", NINE),
    demo("south", "p3", NINE),
    *visits("south", "p3", "webinar", *[NINE] * 7),
    *visits("south", "p3", "blog", NINE),
    *visits("south", "p3", "pricing", NINE, at(8, 59)),
    *visits("south", "p3", "blog", at(9, 5)),
    opened("east"),
    *visits("east", "p4", "blog", at(10, 0), at(10, 1), at(10, 2), at(10, 3)),
    demo("east", "p4", at(10, 4)),
]


def load(engine: Engine, events: list[Event]) -> None:
    with Session(engine) as session:
        session.add(SolutionInterestRecord(id="ai-seeds", name="AI-based seeds", role_template="enterprise-software"))
        for account in GROUPS:
            session.add(Account(id=account, name=account.title(), domain=f"{account}.example"))
        session.flush()
        for name, (account, number) in PEOPLE.items():
            session.add(Person(id=number, account_id=account, email=f"{name}@{account}.example"))
        for account, number in GROUPS.items():
            session.add(BuyingGroup(id=number, account_id=account, solution_interest_id="ai-seeds"))
        session.flush()
        for name in ("p1", "p3", "p4"):
            account, number = PEOPLE[name]
            session.add(BuyingGroupMember(buying_group_id=GROUPS[account], person_id=number, role="champion"))
        session.flush()
        for number, (account, person, when, kind, payload) in enumerate(events):
            person_id = PEOPLE[person][1] if person else None
            session.add(
                ActivityEvent(
                    key=f"e{number:04}",
                    type=kind,
                    account_id=account,
                    person_id=person_id,
                    payload=payload,
                    occurred_at=when,
                )
            )
            session.flush()  # ids in recording order: the log's order at an instant depends on them
        session.commit()


@pytest.fixture
def log(engine: Engine) -> Engine:
    load(engine, EVENTS)
    return engine


Paths = list[tuple[int, list[str], int]]


def paths(report: FlowReport) -> Paths:
    return [(p.start_column, p.steps, p.containers) for p in report.paths]


def content_flow(
    engine: Engine, container: Container, direction: Direction, columns: int, repeats: Repeats = Repeats.exclude
) -> FlowReport:
    return flow(
        engine, parse_selector(DEMO), direction, container, Filters(), "content_type", columns, 5, repeats=repeats
    )


# Per container: the paths of each of the three anchored containers (every path is one container's here).
NORTH_ACCOUNT = {
    Direction.contains: (1, ["case_study", "blog", D, "blog", "pricing"]),
    Direction.ends_with: (1, ["case_study", "blog", D]),
    Direction.starts_with: (1, [D, "blog", "pricing", "webinar"]),
}
NORTH_PERSON = {
    Direction.contains: (1, ["webinar", "blog", D, "blog", "webinar"]),
    Direction.ends_with: (1, ["webinar", "blog", D]),
    Direction.starts_with: (1, [D, "blog", "webinar"]),
}
NORTH_GROUP = {
    Direction.contains: (1, ["case_study", "blog", D, "blog", "webinar"]),
    Direction.ends_with: (1, ["case_study", "blog", D]),
    Direction.starts_with: (1, [D, "blog", "webinar"]),
}
SOUTH = {
    Direction.contains: (1, ["blog", "pricing", D, "webinar", "blog"]),
    Direction.ends_with: (1, ["blog", "pricing", D]),
    Direction.starts_with: (1, [D, "webinar", "blog", "pricing", "blog"]),
}
EAST = {
    Direction.contains: (2, ["blog", D]),
    Direction.ends_with: (2, ["blog", D]),
    Direction.starts_with: (1, [D]),
}
NORTH = {
    Container.account: NORTH_ACCOUNT,
    Container.opportunity: NORTH_ACCOUNT,
    Container.person: NORTH_PERSON,
    Container.buying_group: NORTH_GROUP,
}
# contains: two columns either side; ends_with: two before (a first read of 4 events); starts_with: four after
# (a first read of 8: south's webinars and a blog, then the rest from that blog on, at 09:00).
COLUMNS = {Direction.contains: 5, Direction.ends_with: 3, Direction.starts_with: 5}


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("container", list(Container))
def test_each_container_and_side_walks_past_long_runs_and_ties(
    log: Engine, container: Container, direction: Direction
) -> None:
    report = content_flow(log, container, direction, COLUMNS[direction])
    expected = sorted(
        [(start, steps, 1) for start, steps in (NORTH[container][direction], SOUTH[direction], EAST[direction])],
        key=lambda path: path[1],
    )
    assert report.containers == 3
    assert paths(report) == expected


def test_the_columns_and_links_follow_the_walked_steps(log: Engine) -> None:
    # Over people, containing D: p1 webinar blog D blog webinar; p3 blog pricing D webinar blog; p4 blog D.
    report = content_flow(log, Container.person, Direction.contains, 5)
    assert [[(v.value, v.containers) for v in c.values] for c in report.columns] == [
        [("blog", 1), ("webinar", 1)],
        [("blog", 2), ("pricing", 1)],
        [(D, 3)],
        [("blog", 1), ("webinar", 1)],
        [("blog", 1), ("webinar", 1)],
    ]
    assert [(li.column, li.source, li.target, li.containers) for li in report.links] == [
        (1, "blog", "pricing", 1),
        (1, "webinar", "blog", 1),
        (2, "blog", D, 2),
        (2, "pricing", D, 1),
        (3, D, "blog", 1),
        (3, D, "webinar", 1),
        (4, "blog", "webinar", 1),
        (4, "webinar", "blog", 1),
    ]


def test_more_steps_than_a_container_has(log: Engine) -> None:
    # Nine columns containing D: four either side, more than north's account has after it and p4 before it.
    report = content_flow(log, Container.account, Direction.contains, 9)
    assert paths(report) == [
        (4, ["blog", D], 1),
        (3, ["blog", "pricing", D, "webinar", "blog", "pricing", "blog"], 1),
        (1, ["pricing", "blog", "case_study", "blog", D, "blog", "pricing", "webinar"], 1),
    ]


def test_repeats_included_read_only_as_many_events_as_steps(log: Engine) -> None:
    # Every event is a step: south's webinars at 09:00 fill the columns, in the order they were recorded.
    report = content_flow(log, Container.buying_group, Direction.starts_with, 5, Repeats.include)
    assert paths(report) == [
        (1, [D], 1),
        (1, [D, "blog", "webinar"], 1),
        (1, [D, "webinar", "webinar", "webinar", "webinar"], 1),
    ]
    report = content_flow(log, Container.person, Direction.ends_with, 3, Repeats.include)
    assert paths(report) == [
        (1, ["blog", "blog", D], 2),
        (1, ["pricing", "pricing", D], 1),
    ]


def test_a_run_of_a_thousand_equal_values(engine: Engine) -> None:
    # east (nothing else loaded): a pricing visit, 1,000 blog visits a second apart, then D. Two steps before D
    # take eight reads of 4, 8, ... 512 events.
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    run = [start.replace(minute=1 + second // 60, second=second % 60) for second in range(1000)]
    events = [
        opened("east"),
        *visits("east", "p4", "pricing", start),
        *visits("east", "p4", "blog", *run),
        demo("east", "p4", start.replace(hour=9)),
    ]
    load(engine, events)
    for container in Container:
        report = content_flow(engine, container, Direction.ends_with, 3)
        assert paths(report) == [(1, ["pricing", "blog", D], 1)], container


def test_a_dimension_holding_objects_and_numbers_shows_them_as_text(engine: Engine) -> None:
    # A payload field may hold anything: an object or a number is a step named by its JSON text, as a string
    # (SQLite would otherwise hand the object itself back through the read's JSON list).
    events: list[Event] = [
        opened("east"),
        ("east", "p4", at(10, 0), "web_visit", {"content_type": {"kind": "blog"}}),
        ("east", "p4", at(10, 1), "web_visit", {"content_type": 5}),
        demo("east", "p4", at(10, 2)),
    ]
    load(engine, events)
    for container in Container:
        [path] = content_flow(engine, container, Direction.ends_with, 3).paths
        first, second, milestone = path.steps
        assert (json.loads(first), second, milestone) == ({"kind": "blog"}, "5", D), container
