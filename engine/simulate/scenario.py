"""A simulation scenario: the accounts and people, the events they send and when, service answers and what to
expect. Loaded with the journey loader (positions of every key, hostile YAML refused); every problem is located
`path:line:col: message`, all of them at once."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.language.durations import parse_duration
from engine.language.errors import Issue, JourneyError, did_you_mean
from engine.language.loader import Document, PathKey, load_file
from engine.language.model import EVENT_TYPES

MAX_ACCOUNTS = 10_000
MAX_PEOPLE = 100_000
MAX_EVENT_RULES = 500
MAX_SCHEDULED_EVENTS = 200_000  # event rules times the accounts they apply to
MAX_EXPECTATIONS = 200
MAX_DURATION = timedelta(days=365)  # simulated time; a journey's longest wait is checked by the compiler
MAX_CSV_BYTES = 20_000_000


class ScenarioError(JourneyError):
    """The scenario (or a file it names) has problems; `.issues` holds each, located."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = sorted(issues)
        super().__init__("\n".join(issue.render() for issue in self.issues))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonSpec(_Strict):
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    job_title: str | None = None
    department: str | None = None
    seniority: str | None = None
    unsubscribed: bool = False
    engagement_score: float = 0.0
    attributes: dict[str, Any] = Field(default_factory=dict)


class AccountSpec(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    name: str
    domain: str | None = None
    industry: str | None = None
    employees: int | None = None
    annual_revenue: float | None = None
    country: str | None = None
    timezone: str = "UTC"
    owner_email: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    people: list[PersonSpec] = Field(default_factory=list)


class ServiceAnswer(_Strict):
    """What an external_action node's service answers in the simulation: a status (or `timeout`) and a JSON body."""

    status: int | str = 200
    body: Any = Field(default_factory=dict)

    @field_validator("status")
    @classmethod
    def _status(cls, value: int | str) -> int | str:
        if value == "timeout" or (isinstance(value, int) and 200 <= value <= 599):
            return value
        raise ValueError(f"status must be an HTTP status from 200 to 599 or 'timeout', got '{value}'")


class EventRule(_Strict):
    """An event each account (or the named ones) sends `after` its entry, with the given probability."""

    type: str
    after: timedelta
    payload: dict[str, Any] = Field(default_factory=dict)
    probability: float = Field(1.0, gt=0, le=1)
    account: str | None = None
    accounts: list[str] | None = None
    email: str | None = Field(None, description="the sender; default the account's first person with an address")

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in EVENT_TYPES:
            raise ValueError(f"unknown event type '{value}': expected one of {', '.join(EVENT_TYPES)}")
        return value

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value: object) -> timedelta:
        return parse_duration(value)

    def applies_to(self, account_id: str) -> bool:
        if self.account is not None:
            return account_id == self.account
        return self.accounts is None or account_id in self.accounts


class ScenarioFile(_Strict):
    seed: int = Field(0, ge=0, le=2**63 - 1)
    duration: timedelta
    accounts: list[AccountSpec] | None = Field(None, max_length=MAX_ACCOUNTS)
    accounts_file: str | None = None
    people_file: str | None = None
    services: dict[str, ServiceAnswer] = Field(default_factory=dict)
    events: list[EventRule] = Field(default_factory=list, max_length=MAX_EVENT_RULES)
    expect: list[str] = Field(default_factory=list, max_length=MAX_EXPECTATIONS)

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        duration = parse_duration(value)
        if duration > MAX_DURATION:
            raise ValueError(f"duration '{value}' is longer than the {MAX_DURATION.days}d a simulation may cover")
        return duration


class Scenario(BaseModel):
    """A loaded scenario: accounts resolved from wherever they came, positions kept for located messages."""

    path: str
    seed: int
    duration: timedelta
    accounts: list[AccountSpec]
    services: dict[str, ServiceAnswer]
    events: list[EventRule]
    expect: list[str]
    # 1-based (line, column) of each expectation and event rule, for messages found after loading.
    expect_at: list[tuple[int, int]]
    services_at: dict[str, tuple[int, int]]


def load_scenario(path: Path, accounts_from_db: bool = False) -> Scenario:
    """The scenario in `path`, or ScenarioError with every problem. With `accounts_from_db` the accounts come from
    a copy of the journey database and the file must not list any."""
    document, issues = load_file(path)
    if document is None:
        raise ScenarioError(issues)
    if not isinstance(document.data, dict):
        raise ScenarioError([Issue(document.path, 1, 1, "a scenario is a mapping with duration, accounts, events...")])
    try:
        parsed = ScenarioFile.model_validate(document.data)
    except ValidationError as error:
        raise ScenarioError(issues + _issues(error, document)) from None
    problems = list(issues)
    accounts = list(parsed.accounts or [])
    sources = [parsed.accounts is not None, parsed.accounts_file is not None, accounts_from_db]
    if sum(sources) != 1:
        problems.append(
            Issue(document.path, 1, 1, "give the accounts one way: `accounts:`, `accounts_file:` or --from-db")
        )
    if parsed.people_file is not None and parsed.accounts_file is None:
        problems.append(_at(document, ("people_file",), "people_file goes with a CSV accounts_file"))
    if parsed.accounts_file is not None:
        try:
            accounts = _accounts_file(path.parent, parsed.accounts_file, parsed.people_file)
        except ScenarioError as error:
            problems.extend(error.issues)
    problems.extend(_account_problems(accounts, document, parsed.accounts_file))
    known = {account.id for account in accounts}
    for index, rule in enumerate(parsed.events):
        named = [rule.account] if rule.account is not None else list(rule.accounts or [])
        for position, account_id in enumerate(named):
            if not accounts_from_db and account_id not in known:
                where: PathKey = (
                    ("events", index, "account") if rule.account else ("events", index, "accounts", position)
                )
                problems.append(
                    _at(document, where, f"unknown account '{account_id}'{did_you_mean(account_id, known)}")
                )
        if rule.after > parsed.duration:
            late = "the event comes after the simulation ends: raise `duration`"
            problems.append(_at(document, ("events", index, "after"), late))
    scheduled = sum(sum(rule.applies_to(account.id) for account in accounts) for rule in parsed.events)
    if scheduled > MAX_SCHEDULED_EVENTS:
        message = f"the events would be {scheduled:,} sends, at most {MAX_SCHEDULED_EVENTS:,}: narrow `accounts:`"
        problems.append(_at(document, ("events",), message))
    if problems:
        raise ScenarioError(problems)
    return Scenario(
        path=document.path,
        seed=parsed.seed,
        duration=parsed.duration,
        accounts=accounts,
        services=parsed.services,
        events=parsed.events,
        expect=parsed.expect,
        expect_at=[document.source.value(("expect", index)) for index in range(len(parsed.expect))],
        services_at={name: document.source.key(("services", name)) for name in parsed.services},
    )


def _account_problems(accounts: list[AccountSpec], document: Document, from_file: str | None) -> list[Issue]:
    problems: list[Issue] = []
    if len(accounts) > MAX_ACCOUNTS:
        problems.append(_at(document, ("accounts",), f"{len(accounts):,} accounts, at most {MAX_ACCOUNTS:,}"))
    people = sum(len(account.people) for account in accounts)
    if people > MAX_PEOPLE:
        problems.append(_at(document, ("accounts",), f"{people:,} people, at most {MAX_PEOPLE:,}"))
    seen: set[str] = set()
    emails: set[str] = set()
    for index, account in enumerate(accounts):
        where: PathKey = ("accounts", index, "id") if from_file is None else ("accounts_file",)
        if account.id in seen:
            problems.append(_at(document, where, f"account '{account.id}' is listed twice"))
        seen.add(account.id)
        for person in account.people:
            if person.email is not None and person.email.lower() in emails:
                problems.append(_at(document, where, f"email '{person.email}' is listed twice"))
            emails.add((person.email or "").lower())
    return problems


def _accounts_file(folder: Path, name: str, people_name: str | None) -> list[AccountSpec]:
    """Accounts from a YAML list (people nested as inline) or a CSV (one column per field; people from a second
    CSV with an `account_id` column)."""
    path = folder / name
    if path.suffix.lower() in (".yaml", ".yml"):
        document, issues = load_file(path)
        if document is None:
            raise ScenarioError(issues)
        if not isinstance(document.data, list):
            raise ScenarioError([Issue(document.path, 1, 1, "an accounts file is a list of accounts")])
        if len(document.data) > MAX_ACCOUNTS:
            raise ScenarioError([Issue(document.path, 1, 1, f"more than {MAX_ACCOUNTS:,} accounts")])
        accounts: list[AccountSpec] = []
        problems: list[Issue] = []
        for index, item in enumerate(document.data):
            try:
                accounts.append(AccountSpec.model_validate(item))
            except ValidationError as error:
                problems.extend(_issues(error, document, (index,)))
        if problems:
            raise ScenarioError(problems)
        return accounts
    if path.suffix.lower() != ".csv":
        raise ScenarioError([Issue(str(path), 1, 1, "accounts_file must be a .csv, .yaml or .yml file")])
    accounts = [AccountSpec.model_validate(row) for row in _csv_rows(path, AccountSpec, "people")]
    if people_name is not None:
        by_id = {account.id: account for account in accounts}
        people_path = folder / people_name
        for line, row in enumerate(_csv_rows(people_path, PersonSpec, "account_id", extra="account_id"), start=2):
            account = by_id.get(str(row.pop("account_id", "")))
            if account is None:
                raise ScenarioError([Issue(str(people_path), line, 1, "account_id names no account of accounts_file")])
            account.people.append(PersonSpec.model_validate(row))
    return accounts


def _csv_rows(path: Path, model: type[BaseModel], excluded: str, extra: str | None = None) -> list[dict[str, Any]]:
    """Rows with empty cells left out (the field's default), each validated; problems located by line."""
    try:
        raw = path.read_bytes()[: MAX_CSV_BYTES + 1]
    except OSError as error:
        raise ScenarioError([Issue(str(path), 1, 1, f"cannot read file: {error.strerror}")]) from None
    if len(raw) > MAX_CSV_BYTES:
        raise ScenarioError([Issue(str(path), 1, 1, f"file over {MAX_CSV_BYTES:,} bytes")])
    try:
        reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
        header = reader.fieldnames or []
        known = (set(model.model_fields) - {excluded, "attributes"}) | ({extra} if extra else set())
        unknown = [name for name in header if name not in known]
        if unknown:
            expected = ", ".join(sorted(known))
            raise ScenarioError([Issue(str(path), 1, 1, f"unknown column '{unknown[0]}': expected {expected}")])
        rows: list[dict[str, Any]] = []
        problems: list[Issue] = []
        for line, row in enumerate(reader, start=2):
            if len(rows) >= MAX_ACCOUNTS * (10 if extra else 1):
                raise ScenarioError([Issue(str(path), line, 1, "too many rows")])
            values = {key: value for key, value in row.items() if key is not None and value not in (None, "")}
            try:
                model.model_validate({key: value for key, value in values.items() if key != extra})
            except ValidationError as error:
                first = error.errors()[0]
                column = ".".join(str(part) for part in first["loc"])
                problems.append(Issue(str(path), line, 1, f"{column}: {_message(first)}"))
            rows.append(values)
    except (UnicodeDecodeError, csv.Error) as error:
        raise ScenarioError([Issue(str(path), 1, 1, f"cannot read CSV: {error}")]) from None
    if problems:
        raise ScenarioError(problems)
    return rows


def _issues(error: ValidationError, document: Document, prefix: PathKey = ()) -> list[Issue]:
    issues = []
    for problem in error.errors():
        where: PathKey = prefix + tuple(part for part in problem["loc"] if isinstance(part, str | int))
        if problem["type"] == "extra_forbidden":
            line, col = document.source.key(where)
            issues.append(Issue(document.path, line, col, f"unknown key '{where[-1]}'"))
            continue
        line, col = document.source.value(where)
        named = ".".join(str(part) for part in where)
        issues.append(Issue(document.path, line, col, f"{named}: {_message(problem)}"))
    return issues


def _message(problem: Any) -> str:
    message = str(problem["msg"])
    message = message.removeprefix("Value error, ").replace("Input should be", "expected")
    return message[:1].lower() + message[1:]


def _at(document: Document, where: PathKey, message: str) -> Issue:
    line, col = document.source.value(where)
    return Issue(document.path, line, col, message)
