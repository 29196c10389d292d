"""A small event log for the cohort options (issue 18), its tables computed by hand in
tests/test_analytics_cohort_options.py. Inclusion: form_fill; return: web_visit. All in 2024-2026 (UTC).

- a1 (Agriculture, DE; buying groups seeds and irrigation; variant A): visits 2024-12-20 (month -1), 2025-01-05
  (its inclusion month, but before inclusion: never counted), fills the form 2025-01-10, visits 01-20 (month 0)
  and 03-02 (month 2).
- a2 (Software; seeds; control): visits 2024-11-15 (month -2), fills the form 2025-01-31 23:00, visits
  2025-02-01 00:30 (month 1, across the month's end) and 03-15 (month 2).
- a3 (no industry, no buying group; variant A): visits 2025-01-31 23:59 (month -1), fills the form 2025-02-14 09:00,
  visits the same day 15:00 (month 0), then 03-01, 04-10 (quarter 1) and 05-01 (months 1, 2, 3).
- a4 (Agriculture; in the journey, never through its split): fills the form 2025-02-03, visits 05-20 (month 3).
- a5 (Software; irrigation; not in the journey): fills the form 2025-11-20, visits 12-24 (month 1) and 2026-01-05
  (month 2, the next quarter and the next year).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session
from support import add_account, write_journey

from engine.db import ActivityEvent, BuyingGroup, SolutionInterestRecord
from engine.runtime import publish

JOURNEY = "cohort-test"
SPLIT = "test"
ACCOUNTS: dict[str, dict[str, str | None]] = {
    "a1": {"industry": "Agriculture", "country": "DE"},
    "a2": {"industry": "Software"},
    "a3": {"industry": None},
    "a4": {"industry": "Agriculture"},
    "a5": {"industry": "Software"},
}
GROUPS = [("a1", "seeds"), ("a1", "irrigation"), ("a2", "seeds"), ("a5", "irrigation")]
VARIANTS = {"a1": "A", "a2": "control", "a3": "A"}


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


EVENTS: list[tuple[str, str, datetime]] = [
    ("a1", "web_visit", at(2024, 12, 20)),
    ("a1", "web_visit", at(2025, 1, 5)),
    ("a1", "form_fill", at(2025, 1, 10)),
    ("a1", "web_visit", at(2025, 1, 20)),
    ("a1", "web_visit", at(2025, 3, 2)),
    ("a2", "web_visit", at(2024, 11, 15)),
    ("a2", "form_fill", at(2025, 1, 31, 23)),
    ("a2", "web_visit", at(2025, 2, 1, 0, 30)),
    ("a2", "web_visit", at(2025, 3, 15)),
    ("a3", "web_visit", at(2025, 1, 31, 23, 59)),
    ("a3", "form_fill", at(2025, 2, 14, 9)),
    ("a3", "web_visit", at(2025, 2, 14, 15)),
    ("a3", "web_visit", at(2025, 3, 1)),
    ("a3", "web_visit", at(2025, 4, 10)),
    ("a3", "web_visit", at(2025, 5, 1)),
    ("a4", "form_fill", at(2025, 2, 3)),
    ("a4", "web_visit", at(2025, 5, 20)),
    ("a5", "form_fill", at(2025, 11, 20)),
    ("a5", "web_visit", at(2025, 12, 24)),
    ("a5", "web_visit", at(2026, 1, 5)),
]

SPLIT_JOURNEY = f"""
- id: {SPLIT}
  type: variant_split
  variants:
    - {{name: A, percent: 50, next: done}}
    - {{name: control, percent: 50, holdout: true, next: done}}
- id: done
  type: end
"""


def load(engine: Engine, folder: Path) -> None:
    """The accounts, buying groups, a published journey with an A/B test, and the events above."""
    for account, fields in ACCOUNTS.items():
        add_account(engine, account, **fields)
    plan = write_journey(folder, SPLIT_JOURNEY, start=SPLIT, journey=JOURNEY)
    publish.store_version(engine, plan)
    with Session(engine) as session:
        for interest in sorted({interest for _, interest in GROUPS}):
            session.add(SolutionInterestRecord(id=interest, name=interest.title(), role_template="standard"))
        session.flush()
        for account, interest in GROUPS:
            session.add(BuyingGroup(account_id=account, solution_interest_id=interest))
        for n, (account, kind, moment) in enumerate(EVENTS):
            session.add(ActivityEvent(key=f"e{n}", type=kind, account_id=account, payload={}, occurred_at=moment))
        for account in ["a1", "a2", "a3", "a4"]:  # a4 entered the journey but never reached its split
            session.add(_step(account, "node_entered", {"node_type": "variant_split", "visit": 1}))
            if account in VARIANTS:
                variant = VARIANTS[account]
                payload = {"node_type": "variant_split", "visit": 1, "branch": f"variant {variant}", "variant": variant}
                session.add(_step(account, "node_left", payload))
        session.commit()


def _step(account: str, kind: str, payload: dict[str, object]) -> ActivityEvent:
    return ActivityEvent(
        key=f"{account}-{kind}",
        type=kind,
        account_id=account,
        journey_id=JOURNEY,
        node_id=SPLIT,
        payload=payload,
        occurred_at=at(2025, 1, 2),
    )
