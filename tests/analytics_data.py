"""A small, fixed event log whose reports are computed by hand in tests/test_analytics.py.

Four accounts in January-March 2026 (UTC; 2026-01-05 is a Monday):
- acme: Ann (decision maker, ai-seeds) visits, fills lead form step 1; Bob (influencer, irrigation) visits,
  fills step 2; opportunity opp-a1 created 01-10, closed won 02-03. In journey ai-seed-abm, waiting at
  wait_demo.
- globex: Cat (champion, ai-seeds) visits twice in a row (a loop), fills step 1, skips step 2; opp-g1
  created 01-20, closed won 03-02. Never in a journey.
- initech: Dan (no buying group) fills step 2 on 01-14 and step 1 on 01-15, recorded in the opposite order
  (out of order); opp-i1 created 02-10. Walked the journey to its end, re-entered on 03-01 (at assign).
- umbrella: a buying group with no members, a sales handoff (so opportunity handoff-1), one email open, and
  one click by zoe@umbrella.example, a person the database does not know (stored as unmatched).
Plus one unmatched form fill from an unknown domain, which no report may count.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.db import (
    Account,
    ActivityEvent,
    BuyingGroup,
    BuyingGroupMember,
    Handoff,
    Person,
    SolutionInterestRecord,
)
from engine.language import catalog
from engine.runtime.publish import store_version

REPO = Path(__file__).resolve().parent.parent
JOURNEY = "ai-seed-abm"
PEOPLE = {"ann": 1, "bob": 2, "cat": 3, "dan": 4}


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


# key, when, type, account, person, payload — in the order they are recorded.
EVENTS: list[tuple[str, datetime, str, str | None, str | None, dict[str, Any]]] = [
    ("a1", at(1, 5, 9), "web_visit", "acme", "ann", {"content_type": "blog"}),
    ("a2", at(1, 6, 10), "form_fill", "acme", "ann", {"form": "lead-step-1"}),
    ("x1", at(1, 6, 10), "form_fill", None, None, {"form": "lead-step-1"}),
    ("a3", at(1, 7, 10), "web_visit", "acme", "bob", {"content_type": "webinar"}),
    ("a4", at(1, 8, 10), "form_fill", "acme", "bob", {"form": "lead-step-2"}),
    ("a5", at(1, 10, 12), "opportunity_created", "acme", None, {"opportunity_id": "opp-a1", "stage": "qualify"}),
    ("a6", at(1, 20, 11), "web_visit", "acme", "ann", {"content_type": "pricing"}),
    (
        "a7",
        at(2, 3, 12),
        "opportunity_stage_changed",
        "acme",
        None,
        {"opportunity_id": "opp-a1", "stage": "closed_won"},
    ),
    ("g1", at(1, 12, 9), "web_visit", "globex", "cat", {"content_type": "blog"}),
    ("g2", at(1, 12, 10), "web_visit", "globex", "cat", {"content_type": "blog"}),
    ("g3", at(1, 13, 10), "form_fill", "globex", "cat", {"form": "lead-step-1"}),
    ("g4", at(1, 14, 9), "web_visit", "globex", "cat", {"content_type": "pricing"}),
    ("g5", at(1, 20, 10), "opportunity_created", "globex", None, {"opportunity_id": "opp-g1", "stage": "qualify"}),
    ("g6", at(1, 21, 9), "web_visit", "globex", "cat", {"content_type": "case_study"}),
    (
        "g7",
        at(3, 2, 10),
        "opportunity_stage_changed",
        "globex",
        None,
        {"opportunity_id": "opp-g1", "stage": "closed_won"},
    ),
    ("i1", at(1, 15, 10), "form_fill", "initech", "dan", {"form": "lead-step-1"}),
    ("i2", at(1, 14, 10), "form_fill", "initech", "dan", {"form": "lead-step-2"}),
    ("i3", at(2, 10, 10), "opportunity_created", "initech", None, {"opportunity_id": "opp-i1", "stage": "qualify"}),
    ("u1", at(2, 14, 10), "email_open", "umbrella", None, {"message": "m-1"}),
    ("u2", at(2, 14, 11), "email_click", "umbrella", "zoe", {"message": "m-1", "link": "pricing"}),
]

# account, [(node, node type, entered, left or None, branch)]: the rows the journey workflow writes.
WALKS: list[tuple[str, list[tuple[str, str, datetime, datetime | None, str | None]]]] = [
    (
        "acme",
        [
            ("assign", "assign_buying_group", at(1, 5, 8, 0), at(1, 5, 8, 1), "next"),
            ("intro", "send_email", at(1, 5, 8, 2), at(1, 5, 8, 3), "next"),
            ("wait_demo", "wait_for_event", at(1, 5, 8, 4), None, None),
        ],
    ),
    (
        "initech",
        [
            ("assign", "assign_buying_group", at(1, 5, 8, 0), at(1, 5, 8, 1), "next"),
            ("intro", "send_email", at(1, 5, 8, 2), at(1, 5, 8, 3), "next"),
            ("wait_demo", "wait_for_event", at(1, 5, 8, 4), at(1, 12, 8, 4), "on_timeout"),
            ("size_split", "split", at(1, 12, 8, 5), at(1, 12, 8, 6), "otherwise"),
            ("reminder", "wait", at(1, 12, 8, 7), at(1, 13, 8, 7), "next"),
            ("wait_demo_again", "wait_for_event", at(1, 13, 8, 8), at(1, 20, 8, 8), "on_timeout"),
            ("done", "end", at(1, 20, 8, 9), at(1, 20, 8, 10), None),
            ("assign", "assign_buying_group", at(3, 1, 8, 0), None, None),  # re-entered the journey
        ],
    ),
]


def load(engine: Engine) -> None:
    """Write the data set into an empty database with the schema."""
    plan = next(plan for plan in catalog.validate([REPO / "journeys"]).plans if plan.journey == JOURNEY)
    store_version(engine, plan)
    with Session(engine) as session:
        session.add(SolutionInterestRecord(id="ai-seeds", name="AI-based seeds", role_template="enterprise-software"))
        session.add(SolutionInterestRecord(id="irrigation", name="Irrigation", role_template="enterprise-software"))
        for account in ("acme", "globex", "initech", "umbrella"):
            session.add(Account(id=account, name=account.title(), domain=f"{account}.example"))
        session.flush()
        for name, number in PEOPLE.items():
            account = {"ann": "acme", "bob": "acme", "cat": "globex", "dan": "initech"}[name]
            session.add(
                Person(
                    id=number,
                    account_id=account,
                    email=f"{name}@{account}.example",
                    first_name=name.title(),
                    last_name="Tester",
                )
            )
        groups = [("acme", "ai-seeds"), ("acme", "irrigation"), ("globex", "ai-seeds"), ("umbrella", "ai-seeds")]
        for number, (account, interest) in enumerate(groups, start=1):
            session.add(BuyingGroup(id=number, account_id=account, solution_interest_id=interest))
        session.flush()
        for group, person, role in ((1, 1, "decision_maker"), (2, 2, "influencer"), (3, 3, "champion")):
            session.add(BuyingGroupMember(buying_group_id=group, person_id=person, role=role))
        session.add(
            Handoff(id=1, buying_group_id=4, account_id="umbrella", journey_id=JOURNEY, created_at=at(2, 15, 10))
        )
        session.flush()
        for key, when, kind, account, person, payload in EVENTS:
            person_id = PEOPLE.get(person) if person else None
            unmatched = account is None or (person is not None and person_id is None)
            session.add(
                ActivityEvent(
                    key=key,
                    type=kind,
                    account_id=account,
                    person_id=person_id,
                    email=f"{person}@{account}.example" if person else ("eve@nowhere.example" if not account else None),
                    status="unmatched" if unmatched else "matched",
                    reason="unknown account or person" if unmatched else None,
                    payload=payload,
                    occurred_at=when,
                )
            )
            session.flush()  # ids in recording order, so "out of order" means what it says
        for account, walk in WALKS:
            for visit_key, (node, node_type, entered, left, branch) in enumerate(walk):
                common = {"version": plan.version, "node_type": node_type, "visit": 1}
                rows = [("node_entered", entered, {**common, "branch": None})]
                if left is not None:
                    rows.append(("node_left", left, {**common, "branch": branch}))
                for kind, when, payload in rows:
                    session.add(
                        ActivityEvent(
                            key=f"journey/{JOURNEY}/{account}/{visit_key}/{node}/{kind}",
                            type=kind,
                            account_id=account,
                            journey_id=JOURNEY,
                            node_id=node,
                            payload=payload,
                            occurred_at=when,
                        )
                    )
        session.commit()
