"""What the records of one run must agree on, with each other and with the database: each key once, a domain
naming one account, a person's or opportunity's account known (in the database or imported in the same run),
a new record complete, a person staying in their account.

The first two are checked as records are added; the accounts and domains named are then looked up in chunks;
the last two are judged from what the dry-run comparison (upsert with write=False) says each record would do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.data.fields import KEY, SINGULAR, Kind
from engine.data.problem import Problem
from engine.data.upsert import AMONG, CHUNK, Outcome, table
from engine.data.validate import Record


@dataclass
class Checker:
    kind: Kind
    run_accounts: frozenset[str] = frozenset()  # accounts imported in the same run, before these records
    place: str = "line"  # what a record's `line` counts: a file's lines, or the items of an HTTP batch
    seen: dict[str, int | None] = field(default_factory=dict)  # key -> line
    accounts: dict[str, list[int | None]] = field(default_factory=dict)  # account named -> lines naming it
    domains: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # domain -> (account, line)

    def add(self, record: Record) -> list[Problem]:
        """The record's problems with the records added before it (the same key, the same domain)."""
        key = record.key
        if key is None:
            return []
        noun = SINGULAR[self.kind]
        if key in self.seen:
            message = f"{noun} '{key}' is also {self._where(self.seen[key])}: give each {noun} once"
            return [Problem(record.line, message, KEY[self.kind])]
        values = record.values
        domain = values.get("domain")
        if domain is not None:
            owner = self.domains.setdefault(domain, (key, record.line))
            if owner[0] != key:
                message = (
                    f"'{domain}' is also the domain of account '{owner[0]}' {self._where(owner[1])}: "
                    "a domain names one account"
                )
                return [Problem(record.line, message, "domain")]
        self.seen[key] = record.line
        account = values.get("account_id")
        if account is not None:
            self.accounts.setdefault(account, []).append(record.line)
        return []

    def _where(self, line: int | None) -> str:
        return f"on {self.place} {line}"

    def references(self, connection: Connection) -> list[Problem]:
        """Accounts named that exist neither in the database nor in the run; domains other accounts have."""
        problems: list[Problem] = []
        known = set(self.run_accounts)
        ids = table("accounts").c.id
        for chunk in _chunks(sorted(set(self.accounts) - known)):
            known.update(connection.execute(select(ids).where(ids.in_(AMONG)), {"among": chunk}).scalars())
        for account, lines in self.accounts.items():
            if account not in known:
                message = (
                    f"unknown account '{account}': import it first (journey import accounts FILE) or in the same "
                    "run (--accounts FILE)"
                )
                problems += [Problem(line, message, "account_id") for line in lines]
        domains = table("accounts").c.domain
        for chunk in _chunks(sorted(self.domains)):
            for domain, owner in connection.execute(select(domains, ids).where(domains.in_(AMONG)), {"among": chunk}):
                account, line = self.domains[domain]
                if owner != account:
                    message = (
                        f"'{domain}' is the domain of account '{owner}': a domain names one account "
                        "(change that account's domain first)"
                    )
                    problems.append(Problem(line, message, "domain"))
        return problems

    def judge(self, record: Record, outcome: Outcome) -> list[Problem]:
        """The problems of what the record would do: create an incomplete record, move a person."""
        noun, line = SINGULAR[self.kind], record.line
        if outcome.verdict == "created":
            problems = []
            if self.kind != "people" and record.values.get("name") is None:
                problems.append(Problem(line, f"missing: a new {noun} needs a name", "name"))
            if self.kind != "accounts" and record.values.get("account_id") is None:
                problems.append(Problem(line, f"missing: a new {noun} needs the account it belongs to", "account_id"))
            return problems
        moved = outcome.changes.get("account_id")
        if self.kind == "people" and moved is not None:
            old, new = moved["old"], moved["new"]
            message = (
                f"person '{record.key}' belongs to account '{old}', not '{new}': people do not move between "
                f"accounts (give '{old}', or leave account_id out)"
            )
            return [Problem(line, message, "account_id")]
        return []


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
