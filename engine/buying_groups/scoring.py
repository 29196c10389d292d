"""Buying-group scores as Adobe Journey Optimizer B2B documents them: completeness and engagement.

Pure functions: no I/O and no clock (callers pass `now`), so the scheduled job, an on-demand recompute
and the tests all get the same answer from the same inputs.

Sources: Adobe's "Completeness scores" and "Engagement scores" pages for Journey Optimizer B2B
(experienceleague.adobe.com/en/docs/journey-optimizer-b2b/user/accounts/buying-groups/...; the markdown
lives in github.com/AdobeDocs/journey-optimizer-b2b.en, help/user/buying-groups/).

Completeness
    role%  = 100 * min(assigned, required) / required
    group% = mean of role% over the roles that count toward completeness

    Adobe's table (1 of 3 -> 33%, 4 of 3 -> 100%) is followed, not the formula printed beside it,
    `((assigned - threshold) / threshold) * 100`, which gives -67% for 1 of 3. Adobe divides by the number
    of defined roles; a role with `counts_toward_completeness: false` is left out of both sums here.

Person engagement
    raw    = sum over UTC days d and weighted types t of  w[t] * min(n[t, d], daily_cap)
    person = 100 * sqrt(min(1, raw / R)),   R = sum(w[t] for w[t] > 0) * lookback_in_days

    n[t, d] counts activities with now - lookback < occurred_at <= now. An activity exactly `lookback`
    old has expired: with a job that runs once a day, each activity then counts in exactly 30 runs.
    Adobe's "decay" is only this expiry; there is no time-weighted decay. Adobe does not say which
    day the cap applies to; UTC days are used so the score does not depend on anyone's time zone.

    Adobe's last step is a "scaled normalisation" over every person in the tenant, which would make a
    person's score move when other people act. Instead the reference R is a fixed constant: what a
    person who does every weighted kind of activity once a day for the whole window scores (10,800
    for the default weights). It is the most that steady, human-paced engagement looks like; more
    volume than that comes in bursts and from bots, which the cap is meant to limit, so the score
    levels off at 100. Dividing by the largest score the caps allow (20 times R) would put 50 out of
    reach: it would take 1,350 page views in 30 days, although journeys/buying_groups.yaml tests
    `engagement_score >= 50` and `>= 60`. R comes from the weights passed in, so scaling every weight
    by the same factor changes nothing. A deployment that passes only the types it records also gets
    Adobe's step 3, which renormalises over the types in use so unused ones do not dilute the score.
    Adobe's min-max normalisation of the weights is not applied: it would map the lowest weight
    (email, 30) to zero, which contradicts Adobe's own default table.

Buying-group engagement
    mean  = sum(w_i * s_i) / sum(w_i)      s_i person score, w_i the weight of the person's role
    group = 100 * sqrt(mean / 100)         (= 10 * sqrt(mean))

    These are Adobe's steps in order: normalised role weights, the weighted sum, a square root, then
    scaling back to 0-100 against the group's own maximum (every member at 100). With one member per
    role, `mean` is Adobe's worked example: 52, 28, 17 under vital, important, normal give 35.25.
    Adobe's example sums the members of a role before weighting the role. That sum grows with the
    size of the group and only makes sense against tenant-wide normalisation, so each member is
    weighted by their role's weight instead. The square root lifts low scores (a single member at 25
    makes a group of 50) but keeps the order, so ranking groups is unchanged.

Display
    Adobe shows whole numbers: 75.89999 -> 76 and 66.67% -> 67%. Halves round up (12.5 -> 13), not
    to even as Python's `round` does. Adobe's completeness table shows 2 of 3 as 66%, which contradicts
    its own rounding rule; the rule is followed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

# Adobe's default activity weights, keyed by this project's event types:
#   Attend Event -> event_attended 60        Register for Event -> event_registered 60
#   Interesting Moment -> interesting_moment 60
#   Form Filled Out -> form_fill 40          Page Views -> web_visit 40        Link Clicks -> link_click 40
#   Email Opened -> email_open 30            Email Clicked -> email_click 30
# Types not listed here (person_added, opportunity_created, ...) are not engagement and weigh nothing.
DEFAULT_WEIGHTS: Mapping[str, int] = MappingProxyType(
    {
        "event_attended": 60,
        "event_registered": 60,
        "interesting_moment": 60,
        "form_fill": 40,
        "web_visit": 40,
        "link_click": 40,
        "email_open": 30,
        "email_click": 30,
    }
)
LOOKBACK = timedelta(days=30)
DAILY_CAP = 20
MAX_SCORE = 100.0


@dataclass(frozen=True)
class RoleFill:
    """How many people a role of one buying group requires and how many it has."""

    role: str
    required: int
    assigned: int
    counted: bool = True

    def __post_init__(self) -> None:
        if self.required < 1:
            raise ValueError(f"role '{self.role}': required must be at least 1, got {self.required}")
        if self.assigned < 0:
            raise ValueError(f"role '{self.role}': assigned cannot be negative, got {self.assigned}")


@dataclass(frozen=True)
class Activity:
    """One weighted-or-not event of one person, at an aware instant."""

    type: str
    occurred_at: datetime

    def __post_init__(self) -> None:
        _require_aware(self.occurred_at, f"activity '{self.type}': occurred_at")


def completeness(roles: Sequence[RoleFill]) -> float:
    """Percent 0-100: the mean over counted roles of min(assigned, required) / required.

    With no counted roles there is nothing to complete. The answer is 0.0, not 100.0, so an empty or
    misconfigured template can never look sales-ready and satisfy a `wait_for_completeness` threshold.
    """
    counted = [role for role in roles if role.counted]
    if not counted:
        return 0.0
    return MAX_SCORE * math.fsum(min(role.assigned, role.required) / role.required for role in counted) / len(counted)


def missing_roles(roles: Sequence[RoleFill]) -> list[str]:
    """The counted roles that still need people, in template order."""
    return [role.role for role in roles if role.counted and role.assigned < role.required]


def person_engagement(
    activities: Iterable[Activity],
    now: datetime,
    weights: Mapping[str, int] = DEFAULT_WEIGHTS,
    lookback: timedelta = LOOKBACK,
    daily_cap: int = DAILY_CAP,
) -> float:
    """One person's engagement, 0-100, from their activities in (now - lookback, now]."""
    _require_aware(now, "now")
    if lookback <= timedelta(0):
        raise ValueError(f"lookback must be positive, got {lookback}")
    if daily_cap < 1:
        raise ValueError(f"daily_cap must be at least 1, got {daily_cap}")
    negative = sorted(kind for kind, weight in weights.items() if weight < 0)
    if negative:
        raise ValueError(f"activity weights cannot be negative: {', '.join(negative)}")
    reference = sum(weight for weight in weights.values() if weight > 0) * (lookback / timedelta(days=1))
    if reference == 0:
        return 0.0
    since = now - lookback
    per_day = Counter(
        (activity.type, activity.occurred_at.astimezone(UTC).date())
        for activity in activities
        if weights.get(activity.type, 0) > 0 and since < activity.occurred_at <= now
    )
    raw = sum(weights[kind] * min(count, daily_cap) for (kind, _), count in per_day.items())
    return MAX_SCORE * math.sqrt(min(1.0, raw / reference))


def group_engagement(members: Iterable[tuple[float, int]]) -> float:
    """A buying group's engagement, 0-100, from (person score, role weight) pairs; no members gives 0.0."""
    weighted = 0.0
    total_weight = 0
    for score, weight in members:
        if not 0.0 <= score <= MAX_SCORE:
            raise ValueError(f"person score must be within 0-100, got {score}")
        if weight < 0:
            raise ValueError(f"role weight cannot be negative, got {weight}")
        weighted += score * weight
        total_weight += weight
    if total_weight == 0:
        return 0.0
    mean = weighted / total_weight
    return MAX_SCORE * math.sqrt(min(1.0, mean / MAX_SCORE))


def display(score: float) -> int:
    """The whole number Adobe shows for a score: nearest, halves up (75.89999 -> 76, 12.5 -> 13)."""
    return math.floor(score + 0.5)


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what}: {moment.isoformat()} has no time zone; pass an aware datetime (UTC)")
