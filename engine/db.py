"""The database: sqlmodel tables and the engine factory. Used by activities and the CLI, never by workflows.

SQLite under `.journey/` by default; any SQLAlchemy URL through JOURNEY_DATABASE_URL (PostgreSQL is
tested). Unique constraints carry the exactly-once guarantees: an outbox message, an event-log entry
or a handoff is written once however often an activity retries.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    LargeBinary,
    Table,
    UniqueConstraint,
    event,
    func,
    insert,
    inspect,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.schema import CreateIndex
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

DEFAULT_HOME = Path(".journey")


def utcnow() -> datetime:
    return datetime.now(UTC)


# The event log's keys are unique across senders' event ids and the engine's own records (steps, handoffs,
# webhook receipts, email opens). The engine's keys start with this mark and senders' ids may not (refused
# at ingest), so no sender can pre-empt a record the engine relies on.
ENGINE_KEY_MARK = "~"


def engine_key(*parts: object) -> str:
    """The event-log key of a record the engine writes itself, e.g. engine_key("handoff", 3) == "~handoff/3"."""
    return ENGINE_KEY_MARK + "/".join(str(part) for part in parts)


def insert_new(connection: Connection, table: Table, rows: Sequence[dict[str, Any]], key: str = "key") -> None:
    """Insert the rows whose unique `key` is not in the table yet: one INSERT ... ON CONFLICT DO NOTHING on
    PostgreSQL and SQLite, so a retried or racing writer adds nothing twice and needs no read first."""
    if not rows:
        return
    statement: Any
    if connection.dialect.name == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    elif connection.dialect.name == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
    else:  # no portable ON CONFLICT: leave out the keys that exist (a racing writer then fails the unique key)
        keys = [row[key] for row in rows]
        present = set(connection.execute(select(table.c[key]).where(table.c[key].in_(keys))).scalars())
        rows = [row for row in rows if row[key] not in present]
        statement = insert(table)
    if rows:
        connection.execute(statement, list(rows))


class Instant(TypeDecorator[datetime]):
    """A moment in time, stored in UTC on every database and read back aware, in UTC.

    SQLite keeps no time zone: without this, 10:00+02:00 was stored as 10:00 and read back as 10:00 UTC,
    two hours off, bending every report and the order of events. A naive value is taken as UTC, as
    everywhere in this project."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(**kwargs: Any) -> Any:
    return Field(sa_column=Column(Instant(), **kwargs))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _changed_at() -> Any:
    """When the row last changed: set on insert and by every UPDATE that does not set it itself. Nullable, because
    rows of databases from before the column have no such moment."""
    return _when(nullable=True, default=utcnow, onupdate=utcnow)


class Account(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64, description="readable id, e.g. 'acme-corp'")
    name: str
    domain: str | None = Field(default=None, unique=True, index=True)
    industry: str | None = Field(default=None, index=True)
    employees: int | None = None
    annual_revenue: float | None = None
    country: str | None = None
    timezone: str = "UTC"
    owner_email: str | None = None
    attributes: dict[str, Any] = _json()
    created_at: datetime = _when(nullable=False, default=utcnow)
    updated_at: datetime | None = _changed_at()


class Person(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.id", index=True)
    email: str | None = Field(default=None, unique=True, index=True)
    first_name: str | None = None
    last_name: str | None = None
    job_title: str | None = None
    department: str | None = None
    seniority: str | None = None
    phone: str | None = None
    unsubscribed: bool = False
    engagement_score: float = 0.0
    attributes: dict[str, Any] = _json()
    created_at: datetime = _when(nullable=False, default=utcnow)
    updated_at: datetime | None = _changed_at()


# People are found by email whatever its case (imports, upserts): `lower(email) IN (...)` needs its own index.
Index("ix_person_email_lower", func.lower(Person.__table__.c.email))  # type: ignore[attr-defined]


class Opportunity(SQLModel, table=True):
    """A sales opportunity of an account, as the CRM has it (`journey import opportunities`)."""

    id: str = Field(primary_key=True, max_length=64, description="the CRM's opportunity id")
    account_id: str = Field(foreign_key="account.id", index=True)
    name: str
    stage: str | None = None
    amount: float | None = None
    currency: str | None = Field(default=None, max_length=3, description="ISO 4217 code, e.g. 'EUR'")
    close_date: date | None = None
    is_closed: bool = False
    is_won: bool = False
    attributes: dict[str, Any] = _json()
    created_at: datetime = _when(nullable=False, default=utcnow)
    updated_at: datetime | None = _changed_at()


class SolutionInterestRecord(SQLModel, table=True):
    __tablename__ = "solution_interest"
    id: str = Field(primary_key=True)
    name: str
    role_template: str
    description: str | None = None


class BuyingGroup(SQLModel, table=True):
    __tablename__ = "buying_group"
    __table_args__ = (UniqueConstraint("account_id", "solution_interest_id"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.id", index=True)
    solution_interest_id: str = Field(foreign_key="solution_interest.id")
    stage: str = "awareness"
    status: str | None = Field(default=None, description="free text a journey's update_buying_group sets")
    completeness: float = 0.0
    engagement: float = 0.0
    updated_at: datetime = _when(nullable=False, default=utcnow)


class BuyingGroupRemoval(SQLModel, table=True):
    """A person a journey removed from a buying group: role rules do not place them in it again (a role assigned
    by hand still does). No foreign key to person, so erasing the person is not blocked by it."""

    __tablename__ = "buying_group_removal"
    __table_args__ = (UniqueConstraint("buying_group_id", "person_id"),)
    id: int | None = Field(default=None, primary_key=True)
    buying_group_id: int = Field(foreign_key="buying_group.id", index=True)
    person_id: int
    journey_id: str
    removed_at: datetime = _when(nullable=False, default=utcnow)


class BuyingGroupMember(SQLModel, table=True):
    __tablename__ = "buying_group_member"
    __table_args__ = (UniqueConstraint("buying_group_id", "person_id"),)
    id: int | None = Field(default=None, primary_key=True)
    buying_group_id: int = Field(foreign_key="buying_group.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    role: str
    assigned_by: str = Field(default="rule", description="'rule' or 'manual'")
    rule: str | None = Field(default=None, description="the role rule that placed the person")
    assigned_at: datetime = _when(nullable=False, default=utcnow)


class OutboxMessage(SQLModel, table=True):
    """Every email, keyed by its idempotency key, which is also its Message-ID."""

    __tablename__ = "outbox_message"
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, max_length=255)
    journey_id: str = Field(index=True)
    account_id: str = Field(index=True)
    person_id: int | None = None
    node_id: str
    to_address: str
    subject: str
    html: str
    text: str
    status: str = Field(default="pending", description="pending | sent | failed | suppressed")
    error: str | None = None
    created_at: datetime = _when(nullable=False, default=utcnow)
    sent_at: datetime | None = _when(nullable=True)
    # limits.yaml: the cap that kept a message from going out ('limit:person:3/7d'); transactional messages
    # neither count against the caps nor are held by them.
    suppressed_by: str | None = Field(default=None, max_length=64)
    transactional: bool | None = None


# Counting a person's messages in a window (limits.yaml) on every send.
Index("ix_outbox_message_person_time", OutboxMessage.__table__.c.person_id, OutboxMessage.__table__.c.created_at)  # type: ignore[attr-defined]


class SendQuota(SQLModel, table=True):
    """One row per capped subject ('person', '42'): a send locks it while it counts and reserves, so two
    journeys sending to the same person at once count one after the other (activities/send_limits.py)."""

    __tablename__ = "send_quota"
    scope: str = Field(primary_key=True, max_length=16)
    subject: str = Field(primary_key=True, max_length=64)
    locked_at: datetime | None = _when(nullable=True)


class ActivityEvent(SQLModel, table=True):
    """The event log: what people did (form fills, opens, clicks, visits) and where journeys went.

    `key` is unique: the sender's event id, or a key built from workflow, node and visit, so a retried
    activity never records the same thing twice. Analytics read this table.
    """

    __tablename__ = "activity_event"
    __table_args__ = (
        # An account's events in log order (timelines, the account container's flows). With the person, a
        # buying group's walk checks membership, and with the type a flow over types reads no row at all.
        Index("ix_activity_event_account_order", "account_id", "occurred_at", "id", "person_id", "type"),
        Index("ix_activity_event_type_time", "type", "occurred_at"),
        # Analytics (engine/analytics/): each report step reads one event type per container in log order,
        # (occurred_at, id), and stops at the first match. `id` after the time gives that order straight from
        # the index, with no sort. The trailing columns make the indexes covering: the person container checks
        # the account, the buying-group container the person (its membership), without reading the rows.
        Index("ix_activity_event_type_account_order", "type", "account_id", "occurred_at", "id", "person_id"),
        Index("ix_activity_event_type_person_order", "type", "person_id", "occurred_at", "id", "account_id"),
        # A person's events in log order (the person container's flows; erasing a person). With the account and
        # the type, a flow's walk through a person's nearest events reads no row (PostgreSQL: 0.85 s -> 0.3 s
        # over 31,562 people).
        Index("ix_activity_event_person_order_type", "person_id", "occurred_at", "id", "account_id", "type"),
        Index("ix_activity_event_journey_node", "journey_id", "node_id"),
        # The events relay's queue: rows not yet signalled to journeys, oldest first.
        Index("ix_activity_event_undelivered", "delivered_at", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=255)
    type: str
    account_id: str | None = Field(default=None, foreign_key="account.id")
    person_id: int | None = Field(default=None, foreign_key="person.id")
    email: str | None = None
    journey_id: str | None = None
    node_id: str | None = None
    status: str = Field(default="matched", description="matched | unmatched | parked (the relay set it aside)")
    reason: str | None = Field(default=None, description="why an event is unmatched or parked")
    payload: dict[str, Any] = _json()
    occurred_at: datetime = _when(nullable=False, default=utcnow)
    recorded_at: datetime = _when(nullable=False, default=utcnow)
    delivered_at: datetime | None = _when(nullable=True)
    shared: bool | None = Field(
        default=None,
        description="a journey's own record the relay also delivers to the account's other journeys (update_account's "
        "account_updated); rows written before it existed have none and are not sent late",
    )


class ApiKey(SQLModel, table=True):
    """A key that may send events to `journey serve`. Only its SHA-256 is stored; the key is shown once."""

    __tablename__ = "api_key"
    id: str = Field(primary_key=True, max_length=32, description="the key's public part, e.g. 'jk_3f9a1c2b'")
    name: str = Field(description="who uses it, e.g. 'website' or 'typeform'")
    secret_hash: str = Field(max_length=64, description="hex SHA-256 of the whole key")
    created_at: datetime = _when(nullable=False, default=utcnow)
    expires_at: datetime | None = _when(nullable=True)
    revoked_at: datetime | None = _when(nullable=True)


class Handoff(SQLModel, table=True):
    """The SQL handoff: at most one per buying group, whichever journey gets there first."""

    id: int | None = Field(default=None, primary_key=True)
    buying_group_id: int = Field(foreign_key="buying_group.id", unique=True)
    account_id: str = Field(foreign_key="account.id", index=True)
    journey_id: str
    summary: dict[str, Any] = _json()
    created_at: datetime = _when(nullable=False, default=utcnow)


class JourneyAccount(SQLModel, table=True):
    """The accounts each journey was ever started for: delivering an event signals only these journeys of
    the event's account, not every published journey (most accounts are in none). Written before the
    workflow starts, so an event can never find the workflow running and the row missing; a row whose
    workflow has ended costs one "not found" signal."""

    __tablename__ = "journey_account"
    journey_id: str = Field(primary_key=True)
    account_id: str = Field(primary_key=True, index=True)
    first_started_at: datetime = _when(nullable=False, default=utcnow)


class PayloadBlob(SQLModel, table=True):
    """A large value of Temporal payloads (a journey's Plan, an email template), stored once and referred to by
    its SHA-256 from every history that carries it (engine/runtime/payloads.py). Content-addressed: never
    changed, only added."""

    __tablename__ = "payload_blob"
    digest: str = Field(primary_key=True, max_length=64, description="SHA-256 of data, hex")
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _when(nullable=False, default=utcnow)


class JourneyVersion(SQLModel, table=True):
    """Each published version of a journey, with its Plan, so a running account's version can be read."""

    __tablename__ = "journey_version"
    journey_id: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    name: str
    source: str
    plan: dict[str, Any] = _json()
    published_at: datetime = _when(nullable=False, default=utcnow)


class JourneyStatus(SQLModel, table=True):
    """A published journey's lifecycle state (engine/runtime/journey_state.py): live, closed, stopped or finished,
    who changed it last and why, and its entry schedule as last published. Each change is also in the event log
    (`journey_state_changed`). A journey published before this table existed has no row and counts as live."""

    __tablename__ = "journey_state"
    journey_id: str = Field(primary_key=True)
    state: str = Field(max_length=16, description="live | closed | stopped | finished")
    changed_at: datetime = _when(nullable=False, default=utcnow)
    changed_by: str
    reason: str | None = None
    changes: int = Field(default=1, description="how many changes so far: numbers each change's event-log key")
    schedule_start: datetime | None = _when(nullable=True)
    schedule_end: datetime | None = _when(nullable=True)


class Suppression(SQLModel, table=True):
    """An address that is never emailed again, kept after its person was erased (`journey forget`). Only its
    digest is stored (email_digest), so the record names nobody, yet a later send, import or event carrying
    the same address is recognised."""

    digest: str = Field(primary_key=True, max_length=64, description="email_digest of the address")
    reason: str = Field(default="erased", description="why: 'erased' (GDPR Art. 17)")
    created_at: datetime = _when(nullable=False, default=utcnow)


# A plain SHA-256, not an HMAC under a secret from the environment: the suppression must hold in every process
# (workers, `journey serve`, the CLI, imports) for as long as the database lives, and a key that one process
# lacks, mistypes or rotates would let an erased person be emailed again without any error, the one failure
# this record exists to prevent. What a key would add: someone holding a copy of the database could not test a
# guessed address against it. The prefix keeps the digests apart from the "hashed email" lists of ad
# platforms (plain SHA-256 of the lower-cased address), so they cannot be joined with those.
_DIGEST_PREFIX = b"journey-suppression/v1:"


def normalise_email(email: str) -> str:
    """The form addresses are compared in: surrounding spaces dropped, lower-cased."""
    return email.strip().lower()


def email_digest(email: str) -> str:
    """Hex SHA-256 of the normalised address (see _DIGEST_PREFIX for why no key)."""
    return hashlib.sha256(_DIGEST_PREFIX + normalise_email(email).encode()).hexdigest()


def suppressed_emails(session: Session, emails: Iterable[str]) -> set[str]:
    """The addresses among `emails` (as given) that must never be emailed: their person was erased."""
    digests: dict[str, list[str]] = {}
    for email in emails:
        digests.setdefault(email_digest(email), []).append(email)
    if not digests:
        return set()
    found = session.exec(select(Suppression.digest).where(col(Suppression.digest).in_(list(digests)))).all()
    return {email for digest in found for email in digests[digest]}


def database_url() -> str:
    """JOURNEY_DATABASE_URL, or a SQLite file under JOURNEY_HOME (default `.journey/`)."""
    url = os.environ.get("JOURNEY_DATABASE_URL")
    if url:
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            # psycopg 3 is the driver this project installs and tests; SQLAlchemy would pick psycopg2.
            return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return url
    home = Path(os.environ.get("JOURNEY_HOME", DEFAULT_HOME))
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'journey.db'}"


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_pre_ping=True)
    event.listen(engine, "connect", _postgresql_settings)
    return engine


def _postgresql_settings(connection: Any, _record: Any) -> None:
    # PostgreSQL compiles a query to machine code (JIT) when its estimated cost is high, as an analytics
    # report's is; on these queries, which run in tenths of a second, compiling took longer than it saved.
    # Sessions in UTC, the zone every stored instant is read in: the driver then hands back datetimes already
    # in UTC, which Instant passes through rather than converting each one (80,000 per report).
    cursor = connection.cursor()
    cursor.execute("SET jit = off")
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.close()
    connection.commit()


SQLITE_MMAP_BYTES = 1 << 30


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets the worker's activities write while the CLI reads; foreign keys are off by default.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Reports look up rows all over the event log; read through a memory map, a lookup is a memory access
    # rather than a read() call per page (address space only: the pages are the OS's file cache).
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


@contextmanager
def database(url: str | None = None) -> Iterator[Engine]:
    """An engine on a schema that exists, disposed of when the block ends (for commands)."""
    engine = make_engine(url)
    try:
        init_db(engine)
        yield engine
    finally:
        engine.dispose()


# Indexes that wider ones replaced (a prefix of one declared above): dropped from databases made before.
REPLACED_INDEXES = (
    "ix_activity_event_type_account_time",
    "ix_activity_event_person_id",
    "ix_activity_event_type_account_time_person",
    "ix_activity_event_type_person_time",
    "ix_activity_event_person_time",
    "ix_activity_event_person_order",
    "ix_activity_event_account_time",
)


def init_db(engine: Engine) -> None:
    """Create every table and index that is missing; running it again changes nothing."""
    SQLModel.metadata.create_all(engine)
    _add_missing_columns(engine)
    # create_all skips the indexes of tables that already exist: add those declared since (e.g. analytics').
    # IF NOT EXISTS rather than checkfirst: SQLite cannot reflect an expression index such as lower(email).
    with engine.begin() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for index in table.indexes:
                connection.execute(CreateIndex(index, if_not_exists=True))
        for name in REPLACED_INDEXES:
            connection.execute(text(f"DROP INDEX IF EXISTS {name}"))
    _backfill_journey_accounts(engine)


def _add_missing_columns(engine: Engine) -> None:
    """create_all skips the columns declared since a table was created (e.g. updated_at): add them. Only nullable
    columns can be added to rows that exist, so a new column must be declared nullable."""
    inspector = inspect(engine)
    quote = engine.dialect.identifier_preparer
    missing = []
    for table in SQLModel.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing += [(table, column) for column in table.columns if column.name not in present]
    if not missing:
        return
    with engine.begin() as connection:
        for table, column in missing:
            if not column.nullable:
                raise RuntimeError(f"column {table.name}.{column.name} must be nullable to be added to existing rows")
            kind = column.type.compile(dialect=engine.dialect)
            connection.execute(
                text(f"ALTER TABLE {quote.format_table(table)} ADD COLUMN {quote.format_column(column)} {kind}")
            )


def _backfill_journey_accounts(engine: Engine) -> None:
    """Databases from before journey_account: every account that entered a journey is a member of it."""
    with Session(engine) as session:
        if session.exec(select(JourneyAccount.journey_id).limit(1)).first() is not None:
            return
        entered = session.exec(
            select(ActivityEvent.journey_id, ActivityEvent.account_id)
            .where(ActivityEvent.type == "journey_entered")
            .distinct()
        ).all()
        for journey_id, account_id in entered:
            if journey_id and account_id:
                session.add(JourneyAccount(journey_id=journey_id, account_id=account_id))
        session.commit()
