"""Variant splits (A/B/n tests): which variant an account gets, and how a variant's branch is named.

Assignment is a pure function of (journey id, account id, split id, salt) through SHA-256, never Python's
`hash()` (salted per process): the same account lands in the same variant on every worker, on replay, when it
enters the journey again and in every published version that keeps the split's id, salt and percents. The
workflow, the compiler (edge labels) and the event log (the variant of a node_left row) share this module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

BUCKETS = 100  # one bucket per percent: percents are whole numbers summing to 100
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_BRANCH = re.compile(r"^(?:variant|holdout) (?P<name>[A-Za-z0-9][A-Za-z0-9_-]*) \(\d{1,3}%\)$")


def bucket(journey: str, account: str, split: str, salt: str) -> int:
    """The account's bucket, 0..99, for this split: the first 8 bytes of sha256('journey|account|split|salt')."""
    digest = hashlib.sha256("|".join((journey, account, split, salt)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def choose(percents: Sequence[int], drawn: int) -> int:
    """The index of the variant whose share of the buckets holds `drawn`: variants take buckets in file order."""
    upper = 0
    for index, percent in enumerate(percents):
        upper += percent
        if drawn < upper:
            return index
    raise ValueError(f"bucket {drawn} is beyond the variants' {upper}%: percents must add up to {BUCKETS}")


def assign(journey: str, account: str, split: str, salt: str, percents: Sequence[int]) -> int:
    """The index of the variant this account gets at this split."""
    return choose(percents, bucket(journey, account, split, salt))


def branch_label(name: str, percent: object, holdout: bool) -> str:
    """The edge's label and the node_left row's branch: 'variant A (50%)', 'holdout control (10%)'."""
    return f"{'holdout' if holdout else 'variant'} {name} ({percent}%)"


def variant_of(branch: str | None) -> str | None:
    """The variant's name in a branch written by `branch_label`; None for any other branch."""
    if branch is None:
        return None
    match = _BRANCH.match(branch)
    return match["name"] if match else None


def holdout_route(
    split: str, start: str, successors: Mapping[str, Sequence[str]], sends: frozenset[str]
) -> list[str] | None:
    """The shortest way from a holdout's target `start` to a node in `sends`, if there is one. An account held out
    at `split` stays held out when it comes back there, so the walk leaves the split only towards `start` again."""
    previous: dict[str, str | None] = {start: None}
    queue = [start]
    for current in queue:
        if current in sends:
            path = [current]
            while (before := previous[path[-1]]) is not None:
                path.append(before)
            return path[::-1]
        for target in (start,) if current == split else successors.get(current, ()):
            if target not in previous:
                previous[target] = current
                queue.append(target)
    return None
