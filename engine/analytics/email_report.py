"""The email report: what the outbox did with journeys' emails and what their recipients did with them, per
journey, node, variant (of an A/B test) and day of sending, as AJO's email performance report shows them.

A message is an outbox row (activities/email.py): one email of one node visit to one person. Its day and the
--since/--until window are those of the row's creation, when the node decided to send it (a retry that delivers
later does not move it). Opens, clicks and unsubscribes count for the message their event names in its payload
(`message`, as the tracking links and the one-click unsubscribe link record it), whenever they happened; events that
name no message of the outbox are counted apart as unattributed, never dropped. Every count is a sum over
messages, so nodes add up to their journey and days to the total.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    distinct,
    exists,
    func,
    insert,
    null,
    or_,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from engine.analytics import variants
from engine.analytics.bounds import MOST_DAYS
from engine.analytics.choices import Grain
from engine.analytics.containers import EVENT, PAYLOAD, Filters
from engine.analytics.email_scope import Scope, scope_of
from engine.analytics.node_emails import OUTBOX, SendCounts, tally
from engine.analytics.periods import period_start
from engine.analytics.report import Report, ReportModel
from engine.analytics.timing import percent

OPEN, CLICK, UNSUBSCRIBE = "email_open", "email_click", "unsubscribed"


class EmailRow(ReportModel):
    """One group of messages: the keys that define it (the others None), then its counts."""

    journey: str | None = None
    node: str | None = None
    variant: str | None = None
    day: str | None = None  # YYYY-MM-DD, UTC
    sent: int  # accepted by the mail server
    failed: int  # refused, or not delivered yet after an error (a retry may still send)
    pending: int  # being sent
    suppressed: int  # held back by a limits.yaml cap
    suppressed_by: dict[str, int]  # cap -> messages it held back
    delivered: int | None  # unknown (None): no delivery receipts or bounces reach the engine
    bounced: int | None
    unique_opens: int  # messages opened (a click counts as an open: the pixel is often blocked)
    total_opens: int  # open events, plus one for each message clicked without a recorded open
    unique_clicks: int  # messages with at least one click
    total_clicks: int  # click events
    click_to_open_pct: float | None  # unique clicks / unique opens, one decimal; None when nothing was opened
    unsubscribes: int  # people who unsubscribed by the link of one of these messages


class Unattributed(ReportModel):
    """Events that name no message of the outbox (sent by another tool, or links made before tokens named one)."""

    opens: int
    clicks: int
    unsubscribes: int


class EmailReport(Report):
    report: str = "email"
    container: str = "message"
    journey: str | None
    node: str | None
    split: str | None  # the variant_split broken down by
    splits: list[str]  # the journey's variant splits (several: --split chooses)
    totals: EmailRow
    journeys: list[EmailRow]
    nodes: list[EmailRow]
    variants: list[EmailRow]
    days: list[EmailRow]  # oldest first; at most MOST_DAYS, the latest
    days_left_out: int  # older days with messages beyond MOST_DAYS (counted in the totals)
    unattributed: Unattributed


def email_report(
    engine: Engine, journey: str | None, filters: Filters, node: str | None = None, split: str | None = None
) -> EmailReport:
    """The report over every journey, or one journey (and one node of it); `split` chooses the A/B test."""
    scope = scope_of(engine, journey, node, split)
    with engine.connect() as connection, _per_message(connection, _messages(engine.dialect.name, scope, filters)) as m:
        journeys = _rows(connection, m, ["journey"])
        nodes = _rows(connection, m, ["journey", "node"])
        by_variant = _rows(connection, m, ["variant", "node"]) if scope.split is not None else []
        day_list, left_out = _days(connection, m)
        days = _rows(connection, m, ["day"], [m.c.day >= day_list[0]] if day_list else [])
        unattributed = _unattributed(connection, scope, filters)
    rank = {name: index for index, name in enumerate(_variant_order(engine, scope, by_variant))}
    return EmailReport(
        filters={k: v for k, v in {"journey": journey, "node": node, "split": split}.items() if v} | filters.describe(),
        journey=journey,
        node=node,
        split=scope.split,
        splits=scope.splits,
        totals=_total(journeys),
        journeys=sorted(journeys, key=lambda row: row.journey or ""),
        nodes=sorted(nodes, key=lambda row: (row.journey or "", row.node or "")),
        variants=sorted(by_variant, key=lambda row: (rank.get(row.variant or "", len(rank)), row.node or "")),
        days=sorted(days, key=lambda row: row.day or ""),
        days_left_out=left_out,
        unattributed=unattributed,
    )


_PER_MESSAGE = Table(
    "email_report_message",
    MetaData(),
    *(Column(name, String) for name in ("journey", "node", "variant", "day", "status", "reason")),
    *(Column(name, Integer) for name in ("opens", "clicks", "unsubscribes")),
    prefixes=["TEMPORARY"],
)


@contextmanager
def _per_message(connection: Connection, messages: Select[Any]) -> Iterator[Table]:
    """The messages in scope, with their engagement, in a temporary table of this connection: joining the event log
    to the outbox is the costly part, done once here, and each breakdown then only groups this table."""
    _PER_MESSAGE.create(connection)
    try:
        connection.execute(insert(_PER_MESSAGE).from_select([c.name for c in _PER_MESSAGE.c], messages))
        yield _PER_MESSAGE
    finally:
        connection.rollback()  # a failed statement leaves PostgreSQL's transaction unusable until rolled back
        _PER_MESSAGE.drop(connection, checkfirst=True)
        connection.commit()


def _messages(dialect: str, scope: Scope, filters: Filters) -> Select[Any]:
    """The outbox rows in scope: their keys (the variant when broken down by one, else none), status and engagement."""
    outbox = OUTBOX.c
    where: list[ColumnElement[bool]] = []
    if scope.journey is not None:
        where.append(outbox.journey_id == scope.journey)
    if scope.node is not None:
        where.append(outbox.node_id == scope.node)
    if filters.since:
        where.append(outbox.created_at >= filters.since)
    if filters.until:
        where.append(outbox.created_at < filters.until)
    engaged = _engagement()
    source = OUTBOX.outerjoin(engaged, engaged.c.message == outbox.idempotency_key)
    variant: ColumnElement[Any] = cast(null(), String)
    if scope.journey is not None and scope.split is not None:
        given = variants.assigned(scope.journey, scope.split).subquery("given")
        source = source.outerjoin(given, given.c.account_id == outbox.account_id)
        variant = func.coalesce(given.c.variant, variants.NO_VARIANT)
    return (
        select(
            outbox.journey_id,
            outbox.node_id,
            variant,
            period_start(outbox.created_at, Grain.day, dialect),
            outbox.status,
            outbox.suppressed_by,
            *(func.coalesce(engaged.c[name], 0) for name in _KINDS),
        )
        .select_from(source)
        .where(*where)
    )


def _engagement() -> Subquery:
    """Per message named by an event: its opens, clicks and unsubscribes."""
    message, kind = PAYLOAD["message"].as_string(), EVENT.c.type
    counted = [func.sum(case((kind == name, 1), else_=0)) for name in (OPEN, CLICK, UNSUBSCRIBE)]
    return (
        select(message.label("message"), *(total.label(name) for total, name in zip(counted, _KINDS, strict=True)))
        .where(kind.in_((OPEN, CLICK, UNSUBSCRIBE)), message.is_not(None))
        .group_by(message)
        .subquery("engagement")
    )


_KINDS = ("opens", "clicks", "unsubscribes")


def _rows(
    connection: Connection, m: Table, names: Sequence[str], where: Sequence[ColumnElement[bool]] = ()
) -> list[EmailRow]:
    """One row per value of the columns `names`: the outbox counts and, with them, the engagement counts (each a
    count or sum over messages, so node_emails.tally adds them up over the statuses)."""
    opens, clicks = m.c.opens, m.c.clicks
    engagement = [
        func.count(case((or_(opens > 0, clicks > 0), 1))),
        func.sum(opens) + func.count(case((and_(opens == 0, clicks > 0), 1))),
        func.count(case((clicks > 0, 1))),
        func.sum(clicks),
        func.sum(m.c.unsubscribes),
    ]
    found = tally(connection, [m.c[name] for name in names], m.c.status, m.c.reason, m, where, engagement)
    return [_row(dict(zip(names, group, strict=True)), sends, *sums) for group, (sends, sums) in found.items()]


def _row(
    keys: dict[str, Any], sends: SendCounts, opened: int, opens: int, clicked: int, clicks: int, unsubscribes: int
) -> EmailRow:
    return EmailRow(
        **keys,
        **sends.model_dump(),
        delivered=None,
        bounced=None,
        unique_opens=opened,
        total_opens=opens,
        unique_clicks=clicked,
        total_clicks=clicks,
        click_to_open_pct=percent(clicked, opened),
        unsubscribes=unsubscribes,
    )


def _total(rows: Sequence[EmailRow]) -> EmailRow:
    """The sum of rows that share no message (the journeys): every count is a sum over messages."""
    held: dict[str, int] = {}
    for row in rows:
        for reason, count in row.suppressed_by.items():
            held[reason] = held.get(reason, 0) + count
    sends = SendCounts(
        sent=sum(row.sent for row in rows),
        failed=sum(row.failed for row in rows),
        pending=sum(row.pending for row in rows),
        suppressed=sum(row.suppressed for row in rows),
        suppressed_by=dict(sorted(held.items())),
    )
    fields = ("unique_opens", "total_opens", "unique_clicks", "total_clicks", "unsubscribes")
    return _row({}, sends, *(sum(getattr(row, name) for row in rows) for name in fields))


def _days(connection: Connection, m: Table) -> tuple[list[str], int]:
    """The latest MOST_DAYS days with messages (oldest first), and how many older ones are left out."""
    kept = list(connection.execute(select(m.c.day).distinct().order_by(m.c.day.desc()).limit(MOST_DAYS)).scalars())
    every = connection.execute(select(func.count(distinct(m.c.day)))).scalar_one()
    return sorted(kept), int(every) - len(kept)


def _variant_order(engine: Engine, scope: Scope, rows: Sequence[EmailRow]) -> list[str]:
    """The variants in the order the journey lists them (then those only older versions had), NO_VARIANT last."""
    if scope.journey is None or scope.split is None:
        return []
    found = {row.variant for row in rows if row.variant is not None} - {variants.NO_VARIANT}
    return [*(name for name, _ in variants.ordered(engine, scope.journey, scope.split, found)), variants.NO_VARIANT]


def _unattributed(connection: Connection, scope: Scope, filters: Filters) -> Unattributed:
    """Opens, clicks and unsubscribes in the window (by when they happened) naming no message of the outbox; with
    a journey (and node), those whose payload names it."""
    message, kind = PAYLOAD["message"].as_string(), EVENT.c.type
    known = exists(select(OUTBOX.c.id).where(OUTBOX.c.idempotency_key == message))
    where = [kind.in_((OPEN, CLICK, UNSUBSCRIBE)), or_(message.is_(None), ~known)]
    if scope.journey is not None:
        where.append(PAYLOAD["journey"].as_string() == scope.journey)
    if scope.node is not None:
        where.append(PAYLOAD["node"].as_string() == scope.node)
    if filters.since:
        where.append(EVENT.c.occurred_at >= filters.since)
    if filters.until:
        where.append(EVENT.c.occurred_at < filters.until)
    counts: dict[str, int] = dict(connection.execute(select(kind, func.count()).where(*where).group_by(kind)).all())
    return Unattributed(opens=counts.get(OPEN, 0), clicks=counts.get(CLICK, 0), unsubscribes=counts.get(UNSUBSCRIBE, 0))
