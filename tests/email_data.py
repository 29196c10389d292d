"""A hand-made outbox and its opens, clicks and unsubscribes, for the email report (tests/test_analytics_email.py).

Two journeys over two days. `welcome` is published with an A/B test (`ab`: A -> email_a, B -> email_b, both then
`nudge`); `renewal` is known only from its outbox rows. Per message (the keys below):

    message   node     account (variant)  day  status                         opens  clicks  unsubscribes
    m1        email_a  a1 (A)             1    sent                           3      2       -
    m2        email_a  a1 (A)             1    sent                           -      1       -   click, no open
    m3        email_b  a2 (B)             1    sent                           1      -       -
    m4        nudge    a1 (A)             2    sent                           1      -       1
    m5        nudge    a1 (A)             2    suppressed limit:person:1/7d   -      -       -
    m6        nudge    a2 (B)             2    suppressed limit:account:3/7d  -      -       -
    m7        nudge    a3 (no variant)    2    failed                         -      -       -
    r1        remind   b1                 1    sent (23:59:59)                1      1       -
    r2        remind   b1                 2    sent (00:00:00)                -      -       -

and, naming no message of the outbox: an open of 'welcome'/'nudge' on day 1, a click naming no message on day 2,
and an unsubscribe from a link that named none (made before tokens did) on day 2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from support import add_account, write_journey

from engine.db import ActivityEvent, OutboxMessage
from engine.runtime import publish

DAY_1, DAY_2 = "2026-03-02", "2026-03-03"
WELCOME = """
- id: ab
  type: variant_split
  salt: "s1"
  variants:
    - {name: A, percent: 50, next: email_a}
    - {name: B, percent: 50, next: email_b}
- id: email_a
  type: send_email
  to: all
  subject: "A"
  template: emails/a.html.j2
  next: nudge
- id: email_b
  type: send_email
  to: all
  subject: "B"
  template: emails/a.html.j2
  next: nudge
- id: nudge
  type: send_email
  to: all
  subject: "Nudge"
  template: emails/a.html.j2
  next: done
- id: done
  type: end
"""
# key: (journey, node, account, person, created_at, status, cap)
MESSAGES: dict[str, tuple[str, str, str, int, str, str, str | None]] = {
    "m1": ("welcome", "email_a", "a1", 1, f"{DAY_1}T10:00:00", "sent", None),
    "m2": ("welcome", "email_a", "a1", 2, f"{DAY_1}T10:00:01", "sent", None),
    "m3": ("welcome", "email_b", "a2", 3, f"{DAY_1}T11:00:00", "sent", None),
    "m4": ("welcome", "nudge", "a1", 1, f"{DAY_2}T09:00:00", "sent", None),
    "m5": ("welcome", "nudge", "a1", 2, f"{DAY_2}T09:00:01", "suppressed", "limit:person:1/7d"),
    "m6": ("welcome", "nudge", "a2", 3, f"{DAY_2}T09:00:02", "suppressed", "limit:account:3/7d"),
    "m7": ("welcome", "nudge", "a3", 4, f"{DAY_2}T09:00:03", "failed", None),
    "r1": ("renewal", "remind", "b1", 5, f"{DAY_1}T23:59:59", "sent", None),
    "r2": ("renewal", "remind", "b1", 6, f"{DAY_2}T00:00:00", "sent", None),
}
# (type, message or None, occurred_at, extra payload)
ENGAGEMENT: list[tuple[str, str | None, str, dict[str, Any]]] = [
    ("email_open", "m1", f"{DAY_1}T10:05:00", {}),  # three opens by one person, as an ESP's feed reports them
    ("email_open", "m1", f"{DAY_1}T12:00:00", {}),
    ("email_open", "m1", f"{DAY_2}T08:00:00", {}),
    ("email_click", "m1", f"{DAY_1}T10:06:00", {"link": 1}),
    ("email_click", "m1", f"{DAY_1}T10:07:00", {"link": 2}),
    ("email_click", "m2", f"{DAY_1}T15:00:00", {"link": 1}),  # its pixel was blocked: no open recorded
    ("email_open", "m3", f"{DAY_1}T11:30:00", {}),
    ("email_open", "m4", f"{DAY_2}T09:30:00", {}),
    ("unsubscribed", "m4", f"{DAY_2}T09:31:00", {"via": "one-click link"}),
    ("email_open", "r1", f"{DAY_2}T07:00:00", {}),  # sent on day 1, opened on day 2: counts on day 1
    ("email_click", "r1", f"{DAY_2}T07:01:00", {"link": 1}),
    ("email_open", "journey/welcome/ghost", f"{DAY_1}T13:00:00", {"journey": "welcome", "node": "nudge"}),
    ("email_click", None, f"{DAY_2}T10:00:00", {"url": "https://acme.example/"}),
    ("unsubscribed", None, f"{DAY_2}T11:00:00", {"via": "one-click link"}),
]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def load_email_data(engine: Engine, folder: Path) -> None:
    """The journeys, accounts, variant assignments, outbox rows and events above."""
    plan = write_journey(folder, WELCOME, "ab", journey="welcome", templates={"emails/a.html.j2": "<p>Hi</p>\n"})
    publish.store_version(engine, plan)
    for account in ("a1", "a2", "a3", "b1"):
        add_account(engine, account)
    outbox = [
        {
            "idempotency_key": key,
            "journey_id": journey,
            "node_id": node,
            "account_id": account,
            "person_id": person,
            "to_address": f"p{person}@{account}.example",
            "subject": "s",
            "html": "<p>h</p>",
            "text": "h",
            "status": status,
            "suppressed_by": cap,
            "created_at": _at(created),
            "sent_at": _at(created) if status == "sent" else None,
        }
        for key, (journey, node, account, person, created, status, cap) in MESSAGES.items()
    ]
    events: list[dict[str, Any]] = [
        {
            "key": f"split-{account}",
            "type": "node_left",
            "account_id": account,
            "journey_id": "welcome",
            "node_id": "ab",
            "payload": {"branch": f"variant {variant} (50%)", "variant": variant, "node_type": "variant_split"},
            "occurred_at": _at(f"{DAY_1}T09:00:00"),
        }
        for account, variant in (("a1", "A"), ("a2", "B"))
    ]
    for number, (kind, message, occurred, extra) in enumerate(ENGAGEMENT):
        named = MESSAGES.get(message or "")
        payload = {"message": message, "journey": named[0], "node": named[1]} if named else {}
        if message is not None and named is None:
            payload["message"] = message
        events.append(
            {
                "key": f"engagement-{number}",
                "type": kind,
                "account_id": named[2] if named else None,
                "journey_id": None,  # as the tracking links record them: the payload names the message
                "node_id": None,
                "payload": {**payload, **extra},
                "occurred_at": _at(occurred),
            }
        )
    with engine.begin() as connection:
        connection.execute(insert(OutboxMessage), outbox)
        connection.execute(insert(ActivityEvent), events)


def counts(
    sent: int = 0,
    failed: int = 0,
    suppressed_by: dict[str, int] | None = None,
    opened: int = 0,
    opens: int = 0,
    clicked: int = 0,
    clicks: int = 0,
    ctor: float | None = None,
    unsubscribes: int = 0,
    **keys: str,
) -> dict[str, Any]:
    """One expected row of the report's JSON (nothing here is pending; delivered and bounced are unknown)."""
    held = suppressed_by or {}
    return {
        "journey": None,
        "node": None,
        "variant": None,
        "day": None,
        **keys,
        "sent": sent,
        "failed": failed,
        "pending": 0,
        "suppressed": sum(held.values()),
        "suppressed_by": held,
        "delivered": None,
        "bounced": None,
        "unique_opens": opened,
        "total_opens": opens,
        "unique_clicks": clicked,
        "total_clicks": clicks,
        "click_to_open_pct": ctor,
        "unsubscribes": unsubscribes,
    }


CAPS = {"limit:account:3/7d": 1, "limit:person:1/7d": 1}
# Worked out by hand from the table in the module's docstring (m2's click without an open counts one open).
EMAIL_A: dict[str, Any] = dict(sent=2, opened=2, opens=4, clicked=2, clicks=3, ctor=100.0)
EMAIL_B: dict[str, Any] = dict(sent=1, opened=1, opens=1, ctor=0.0)
NUDGE: dict[str, Any] = dict(sent=1, failed=1, suppressed_by=CAPS, opened=1, opens=1, ctor=0.0, unsubscribes=1)
REMIND: dict[str, Any] = dict(sent=2, opened=1, opens=1, clicked=1, clicks=1, ctor=100.0)
WELCOME_TOTAL: dict[str, Any] = dict(
    sent=4, failed=1, suppressed_by=CAPS, opened=4, opens=6, clicked=2, clicks=3, ctor=50.0, unsubscribes=1
)
TOTAL: dict[str, Any] = dict(
    sent=6, failed=1, suppressed_by=CAPS, opened=5, opens=7, clicked=3, clicks=4, ctor=60.0, unsubscribes=1
)
DAY_1_ROW: dict[str, Any] = dict(sent=4, opened=4, opens=6, clicked=3, clicks=4, ctor=75.0)
DAY_2_ROW: dict[str, Any] = dict(sent=2, failed=1, suppressed_by=CAPS, opened=1, opens=1, ctor=0.0, unsubscribes=1)
VARIANTS = [
    counts(variant="A", node="email_a", **EMAIL_A),
    counts(variant="A", node="nudge", **{**NUDGE, "failed": 0, "suppressed_by": {"limit:person:1/7d": 1}}),
    counts(variant="B", node="email_b", **EMAIL_B),
    counts(variant="B", node="nudge", suppressed_by={"limit:account:3/7d": 1}),
    counts(variant="(no variant)", node="nudge", failed=1),
]
