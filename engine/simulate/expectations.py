"""The `expect:` lines of a scenario: a small grammar, each line parsed on its own and checked against what the
simulation recorded.

    ACCOUNT reaches NODE [within DURATION]
    ACCOUNT does not reach NODE [within DURATION]
    node NODE sends [at least | at most | exactly] N email[s]
    (at least | at most | exactly) N[%] [of accounts] reach NODE [within DURATION]
    (at least | at most | exactly) N[%] [of accounts] time out at NODE

DURATION is counted from the account's entry (e.g. `14d`); N% is of the accounts that entered the journey.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, cast

from engine.language.durations import format_duration, parse_duration
from engine.language.errors import did_you_mean
from engine.simulate.outcome import Outcome

Comparison = Literal["at least", "at most", "exactly"]
GRAMMAR = (
    "expected 'ACCOUNT reaches NODE [within 14d]', 'ACCOUNT does not reach NODE', 'node NODE sends [at least|at most]"
    " N emails', '(at least|at most|exactly) N[%] reach NODE [within 14d]' or '... N[%] time out at NODE'"
)
_ID = r"([A-Za-z0-9][A-Za-z0-9._-]*)"
_COUNT = r"(at least|at most|exactly)\s+(\d{1,9})(%?)(?:\s+of\s+accounts)?"
_WITHIN = r"(?:\s+within\s+(\S+))?"
_PATTERNS = {
    "reaches": re.compile(rf"^{_ID}\s+(reaches|does not reach)\s+{_ID}{_WITHIN}$"),
    "sends": re.compile(r"^node\s+" + _ID + r"\s+sends\s+(?:(at least|at most|exactly)\s+)?(\d{1,9})\s+emails?$"),
    "share_reach": re.compile(rf"^{_COUNT}\s+reach\s+{_ID}{_WITHIN}$"),
    "share_timeout": re.compile(rf"^{_COUNT}\s+times?\s+out\s+at\s+{_ID}$"),
}


class ExpectationError(ValueError):
    """An `expect:` line that does not match the grammar or names an unknown node or account."""


@dataclass(frozen=True)
class Expectation:
    text: str
    kind: Literal["reaches", "not_reaches", "sends", "share_reach", "share_timeout"]
    node: str
    account: str | None = None
    comparison: Comparison = "exactly"
    amount: int = 0
    percent: bool = False
    within: timedelta | None = None

    def check(self, outcome: Outcome) -> tuple[bool, str]:
        """(held, what was found)."""
        if self.kind in ("reaches", "not_reaches"):
            assert self.account is not None
            when = outcome.first_reached(self.account, self.node)
            reached = when is not None and (self.within is None or when <= self.within)
            found = f"reached it after {format_duration(when)}" if when is not None else "never reached it"
            return reached == (self.kind == "reaches"), found
        if self.kind == "sends":
            sent = outcome.emails.get(self.node, 0)
            return _compare(sent, self.comparison, self.amount), f"{sent} sent"
        if self.kind == "share_reach":
            count = sum(
                1
                for account in outcome.started
                if (when := outcome.first_reached(account, self.node)) is not None
                and (self.within is None or when <= self.within)
            )
        else:
            count = len(outcome.timed_out.get(self.node, set()))
        total = len(outcome.started)
        if self.percent:
            share = 100.0 * count / total if total else 0.0
            return _compare(share, self.comparison, self.amount), f"{count} of {total} ({share:.1f}%)"
        return _compare(count, self.comparison, self.amount), f"{count} of {total}"


def parse(text: str, nodes: Collection[str], accounts: Collection[str] | None) -> Expectation:
    """One line; `accounts` None when they are not known yet (they come from the database)."""
    line = " ".join(text.split())
    for kind, pattern in _PATTERNS.items():
        match = pattern.match(line)
        if match is None:
            continue
        if kind == "reaches":
            account, verb, node, within = match.groups()
            _known(node, nodes, "node")
            if accounts is not None:
                _known(account, accounts, "account")
            return Expectation(
                line,
                "reaches" if verb == "reaches" else "not_reaches",
                node,
                account=account,
                within=_within(within),
            )
        if kind == "sends":
            node, comparison, amount = match.groups()
            _known(node, nodes, "node")
            chosen = cast(Comparison, comparison or "exactly")
            return Expectation(line, "sends", node, comparison=chosen, amount=int(amount))
        comparison, amount, percent, node, *rest = match.groups()
        _known(node, nodes, "node")
        if percent and int(amount) > 100:
            raise ExpectationError(f"'{amount}%' is more than 100%")
        return Expectation(
            line,
            "share_reach" if kind == "share_reach" else "share_timeout",
            node,
            comparison=cast(Comparison, comparison),
            amount=int(amount),
            percent=bool(percent),
            within=_within(rest[0] if rest else None),
        )
    raise ExpectationError(f"cannot read '{line[:120]}': {GRAMMAR}")


def _known(name: str, names: Collection[str], what: str) -> None:
    if name not in names:
        raise ExpectationError(f"unknown {what} '{name}'{did_you_mean(name, names)}")


def _within(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        raise ExpectationError(str(error)) from None


def _compare(value: float, comparison: Comparison, amount: int) -> bool:
    if comparison == "at least":
        return value >= amount
    if comparison == "at most":
        return value <= amount
    return value == amount
