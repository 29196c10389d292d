"""Buying-group scores: completeness, person and group engagement, and display, against hand-computed values.

Engagement constants used in the comments: the default weights add up to 60+60+60+40+40+40+30+30 = 360,
so the person reference is R = 360 * 30 days = 10,800 and person = 100 * sqrt(min(1, raw / 10,800)).
The group score is 10 * sqrt(sum(w * s) / sum(w)).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.buying_groups.scoring import (
    DEFAULT_WEIGHTS,
    Activity,
    RoleFill,
    completeness,
    display,
    group_engagement,
    missing_roles,
    person_engagement,
)

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CEST = timezone(timedelta(hours=2))
EDT = timezone(timedelta(hours=-4))


def acts(kind: str, count: int, at: datetime) -> list[Activity]:
    return [Activity(kind, at) for _ in range(count)]


def every_type_daily(per_type: int, days: int) -> list[Activity]:
    """`per_type` activities of every default-weighted type on each of the `days` days ending at NOW."""
    return [a for day in range(days) for kind in DEFAULT_WEIGHTS for a in acts(kind, per_type, NOW - day * DAY)]


class TestCompleteness:
    """Completeness is the mean over counted roles of min(assigned, required) / required, in percent."""

    @pytest.mark.parametrize(
        ("required", "assigned", "expected"),
        [
            pytest.param(3, 0, 0.0, id="3-required-0-assigned"),  # 0/3 = 0%
            pytest.param(3, 1, 100 / 3, id="3-required-1-assigned"),  # 1/3 = 33.33% (Adobe: 33%)
            pytest.param(3, 2, 200 / 3, id="3-required-2-assigned"),  # 2/3 = 66.67%
            pytest.param(3, 3, 100.0, id="3-required-3-assigned"),  # at threshold = 100%
            pytest.param(3, 4, 100.0, id="3-required-4-assigned"),  # above threshold: min(4, 3)/3 = 100%
            pytest.param(5, 1, 20.0, id="5-required-1-assigned"),  # 1/5 = 20%
            pytest.param(5, 2, 40.0, id="5-required-2-assigned"),  # 2/5 = 40%
            pytest.param(5, 3, 60.0, id="5-required-3-assigned"),  # 3/5 = 60%
            pytest.param(5, 4, 80.0, id="5-required-4-assigned"),  # 4/5 = 80%
            pytest.param(5, 5, 100.0, id="5-required-5-assigned"),  # 5/5 = 100%
            pytest.param(5, 6, 100.0, id="5-required-6-assigned"),  # min(6, 5)/5 = 100%
        ],
    )
    def test_adobe_role_examples(self, required: int, assigned: int, expected: float) -> None:
        """A single role scores as in Adobe's role completeness table."""
        assert completeness([RoleFill("decision_maker", required, assigned)]) == pytest.approx(expected)

    @pytest.mark.parametrize(
        ("roles", "expected"),
        [
            pytest.param([], 0.0, id="no-roles"),  # nothing to complete: 0, never vacuously 100
            pytest.param(
                [RoleFill("decision_maker", 1, 0), RoleFill("champion", 1, 0), RoleFill("influencer", 2, 0)],
                0.0,
                id="no-people",
            ),  # (0 + 0 + 0) / 3 = 0
            pytest.param([RoleFill("user", 3, 2, counted=False)], 0.0, id="no-counted-roles"),  # no counted roles
            pytest.param([RoleFill("decision_maker", 1, 1)], 100.0, id="single-role-full"),  # 1/1 = 100
            pytest.param(
                [RoleFill("decision_maker", 1, 1), RoleFill("user", 3, 0, counted=False)],
                100.0,
                id="uncounted-role-ignored",
            ),  # only decision_maker counts: 1/1 = 100
            pytest.param(
                [RoleFill("decision_maker", 1, 3), RoleFill("influencer", 2, 0)],
                50.0,
                id="over-filled-does-not-compensate",
            ),  # (min(3,1)/1 + 0/2) / 2 = (1 + 0) / 2 = 50, not (3 + 0) / 3
            pytest.param(
                [RoleFill("decision_maker", 2, 1), RoleFill("influencer", 1, 1), RoleFill("practitioner", 1, 0)],
                50.0,
                id="adobe-two-decision-makers-example",
            ),  # (1/2 + 1/1 + 0/1) / 3 = 1.5 / 3 = 50
            pytest.param(
                [
                    RoleFill("decision_maker", 1, 1),
                    RoleFill("champion", 1, 0),
                    RoleFill("influencer", 2, 1),
                    RoleFill("economic_buyer", 1, 1),
                    RoleFill("technical_evaluator", 1, 2),
                    RoleFill("user", 3, 0, counted=False),
                ],
                70.0,
                id="mixed-enterprise-template",
            ),  # (1 + 0 + 1/2 + 1 + 1) / 5 = 3.5 / 5 = 70; user not counted
        ],
    )
    def test_groups(self, roles: list[RoleFill], expected: float) -> None:
        """The group score is the mean of the counted roles' fills, each capped at full."""
        assert completeness(roles) == pytest.approx(expected)

    @pytest.mark.parametrize(
        ("roles", "expected"),
        [
            pytest.param([], [], id="no-roles"),
            pytest.param([RoleFill("decision_maker", 1, 1), RoleFill("influencer", 2, 2)], [], id="all-full"),
            pytest.param(
                [
                    RoleFill("decision_maker", 1, 1),
                    RoleFill("champion", 1, 0),
                    RoleFill("influencer", 2, 1),
                    RoleFill("technical_evaluator", 1, 2),
                    RoleFill("user", 3, 0, counted=False),
                ],
                ["champion", "influencer"],
                id="mixed-in-template-order",
            ),  # champion 0<1, influencer 1<2; technical_evaluator over-filled; user not counted
            pytest.param(
                [RoleFill("influencer", 2, 0), RoleFill("decision_maker", 1, 0)],
                ["influencer", "decision_maker"],
                id="order-kept-not-sorted",
            ),
        ],
    )
    def test_missing_roles(self, roles: list[RoleFill], expected: list[str]) -> None:
        """Missing roles are the counted roles below their requirement, in template order."""
        assert missing_roles(roles) == expected

    @pytest.mark.parametrize(
        ("required", "assigned"),
        [pytest.param(0, 0, id="nothing-required"), pytest.param(1, -1, id="negative-assigned")],
    )
    def test_invalid_fill(self, required: int, assigned: int) -> None:
        """A role that requires nobody or has a negative count is refused, naming the role."""
        with pytest.raises(ValueError, match="role 'champion'"):
            RoleFill("champion", required, assigned)


class TestPersonEngagement:
    """A person's engagement follows Adobe: 30-day window, daily cap of 20 per type, weights, square root."""

    def test_default_weights_are_adobes(self) -> None:
        """The default weights are Adobe's default model under this project's event type names."""
        assert dict(DEFAULT_WEIGHTS) == {
            "event_attended": 60,
            "event_registered": 60,
            "interesting_moment": 60,
            "form_fill": 40,
            "web_visit": 40,
            "link_click": 40,
            "email_open": 30,
            "email_click": 30,
        }

    @pytest.mark.parametrize(
        ("activities", "expected"),
        [
            pytest.param([], 0.0, id="empty"),
            pytest.param(acts("email_open", 1, NOW - DAY), 5.270463, id="one-email-open"),
            # raw 30 -> 100 * sqrt(30 / 10800) = 100 * sqrt(1/360) = 100 / 18.97367 = 5.270463
            pytest.param(acts("email_open", 20, NOW - DAY), 23.570226, id="20-opens-in-a-day-all-count"),
            # raw 20 * 30 = 600 -> 100 * sqrt(600 / 10800) = 100 * sqrt(1/18) = 23.570226
            pytest.param(acts("email_open", 25, NOW - DAY), 23.570226, id="25-opens-in-a-day-count-20"),
            # capped: min(25, 20) * 30 = 600 -> 23.570226, the same as 20 opens
            pytest.param(
                acts("email_open", 20, NOW - 2 * DAY) + acts("email_open", 5, NOW - DAY),
                26.352314,
                id="25-opens-over-two-days-all-count",
            ),
            # (20 + 5) * 30 = 750 -> 100 * sqrt(750 / 10800) = 100 * sqrt(5/72) = 100 * 0.2635231 = 26.352314
            pytest.param(
                acts("event_attended", 15, NOW - 3 * DAY)
                + acts("event_attended", 15, NOW - 2 * DAY)
                + acts("event_attended", 15, NOW - DAY),
                50.0,
                id="quarter-of-reference-is-50",
            ),
            # 45 * 60 = 2700 = 10800 / 4 -> 100 * sqrt(1/4) = 50
            pytest.param(
                acts("web_visit", 37, NOW - DAY)
                + acts("web_visit", 15, NOW - timedelta(hours=2))
                + acts("email_click", 1, NOW - DAY)
                + acts("email_click", 1, NOW - timedelta(hours=2)),
                36.767538,
                id="adobe-example-adam",
            ),
            # visits min(37,20) + 15 = 35 -> 1400; clicks 1 + 1 = 2 -> 60; raw 1460
            # -> 100 * sqrt(1460 / 10800) = 100 * sqrt(0.1351852) = 36.767538
            pytest.param(every_type_daily(1, 30), 100.0, id="every-type-daily-is-100"),
            # one of each type on each of 30 days: raw 360 * 30 = 10800 = R -> 100 * sqrt(1) = 100
            pytest.param(every_type_daily(25, 31), 100.0, id="large-volume-saturates-at-100"),
            # 31 * 8 * 25 = 6200 activities; the 31st day is exactly 30 days old and out;
            # raw 30 * 360 * 20 = 216000 = 20 R -> min(1, 20) -> 100
        ],
    )
    def test_scores(self, activities: list[Activity], expected: float) -> None:
        """Each case scores the value computed by hand next to it."""
        assert person_engagement(activities, NOW) == pytest.approx(expected, abs=1e-6)

    @pytest.mark.parametrize(
        ("age", "expected"),
        [
            pytest.param(timedelta(days=30), 0.0, id="exactly-30-days-ago-out"),  # expired at 30 days
            pytest.param(timedelta(days=30) - timedelta(microseconds=1), 5.270463, id="just-under-30-days-in"),
            # raw 30 -> 5.270463
            pytest.param(timedelta(0), 5.270463, id="at-now-in"),  # the window includes now
            pytest.param(-timedelta(microseconds=1), 0.0, id="future-out"),  # has not happened yet at `now`
        ],
    )
    def test_window_boundaries(self, age: timedelta, expected: float) -> None:
        """The window is (now - 30 days, now]: an activity exactly 30 days old has expired."""
        assert person_engagement(acts("email_open", 1, NOW - age), NOW) == pytest.approx(expected, abs=1e-6)

    @pytest.mark.parametrize(
        ("activities", "expected"),
        [
            pytest.param(
                acts("person_added", 5, NOW - DAY) + acts("opportunity_created", 3, NOW - DAY) + acts("x", 1, NOW),
                0.0,
                id="only-unweighted",
            ),
            pytest.param(
                acts("person_added", 5, NOW - DAY) + acts("email_open", 1, NOW - DAY),
                5.270463,
                id="unweighted-beside-an-open",
            ),  # only the open counts: raw 30 -> 5.270463
        ],
    )
    def test_unweighted_types_ignored(self, activities: list[Activity], expected: float) -> None:
        """Activity types without a weight add nothing."""
        assert person_engagement(activities, NOW) == pytest.approx(expected, abs=1e-6)

    @pytest.mark.parametrize(
        ("late", "expected"),
        [
            pytest.param(datetime(2024, 5, 2, 1, 30, tzinfo=CEST), 23.570226, id="next-local-day-same-utc-day"),
            # 01:30+02:00 on 2 May is 23:30Z on 1 May, the same UTC day as the 20 at 23:00Z:
            # min(25, 20) * 30 = 600 -> 100 * sqrt(1/18) = 23.570226
            pytest.param(datetime(2024, 5, 1, 20, 30, tzinfo=EDT), 26.352314, id="same-local-day-next-utc-day"),
            # 20:30-04:00 on 1 May is 00:30Z on 2 May, the next UTC day: (20 + 5) * 30 = 750 -> 26.352314
        ],
    )
    def test_cap_uses_utc_days(self, late: datetime, expected: float) -> None:
        """The daily cap counts per UTC day, whatever time zone the activity was recorded in."""
        activities = acts("email_open", 20, datetime(2024, 5, 1, 23, 0, tzinfo=UTC)) + acts("email_open", 5, late)
        assert person_engagement(activities, NOW) == pytest.approx(expected, abs=1e-6)

    @pytest.mark.parametrize(
        ("activities", "weights", "lookback", "cap", "expected"),
        [
            pytest.param(
                acts("email_open", 1, NOW - DAY),
                {"email_open": 30},
                timedelta(days=30),
                20,
                18.257419,
                id="only-used-types-no-dilution",
            ),  # R = 30 * 30 = 900: 100 * sqrt(30 / 900) = 100 * sqrt(1/30) = 18.257419
            pytest.param(
                acts("email_open", 1, NOW - DAY) + acts("web_visit", 10, NOW - DAY),
                {"email_open": 30, "web_visit": 0},
                timedelta(days=30),
                20,
                18.257419,
                id="zero-weight-ignored",
            ),  # web_visit weighs 0: raw 30, R = 30 * 30 = 900 -> 18.257419
            pytest.param(
                acts("email_open", 1, NOW - DAY),
                {kind: 2 * weight for kind, weight in DEFAULT_WEIGHTS.items()},
                timedelta(days=30),
                20,
                5.270463,
                id="scaled-weights-same-score",
            ),  # raw 60, R = 720 * 30 = 21600: 100 * sqrt(60 / 21600) = 100 * sqrt(1/360) = 5.270463
            pytest.param(
                acts("email_open", 8, NOW - DAY) + acts("email_open", 1, NOW - 8 * DAY),
                DEFAULT_WEIGHTS,
                timedelta(days=7),
                5,
                24.397502,
                id="custom-lookback-and-cap",
            ),  # 8 days old is out; min(8, 5) * 30 = 150, R = 360 * 7 = 2520: 100 * sqrt(150/2520) = 24.397502
        ],
    )
    def test_parameters(
        self, activities: list[Activity], weights: dict[str, int], lookback: timedelta, cap: int, expected: float
    ) -> None:
        """Custom weights, lookback and cap change the raw score and the reference together."""
        score = person_engagement(activities, NOW, weights=weights, lookback=lookback, daily_cap=cap)
        assert score == pytest.approx(expected, abs=1e-6)

    def test_no_weights_scores_zero(self) -> None:
        """With every weight zero nothing is engagement, and the score is 0."""
        assert person_engagement(acts("email_open", 3, NOW), NOW, weights={"email_open": 0}) == 0.0

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            pytest.param({"now": datetime(2024, 5, 10, 12)}, "now: .* has no time zone", id="naive-now"),
            pytest.param({"weights": {"email_open": -30}}, "cannot be negative: email_open", id="negative-weight"),
            pytest.param({"lookback": timedelta(0)}, "lookback must be positive", id="empty-lookback"),
            pytest.param({"daily_cap": 0}, "daily_cap must be at least 1", id="zero-cap"),
        ],
    )
    def test_invalid_arguments(self, kwargs: dict[str, object], message: str) -> None:
        """Arguments that make no score are refused with a message naming them."""
        arguments: dict[str, object] = {"activities": [], "now": NOW, **kwargs}
        with pytest.raises(ValueError, match=message):
            person_engagement(**arguments)  # type: ignore[arg-type]

    def test_naive_activity_refused(self) -> None:
        """An activity without a time zone is refused: its UTC day would be a guess."""
        with pytest.raises(ValueError, match=r"activity 'email_open': occurred_at: .* has no time zone"):
            Activity("email_open", datetime(2024, 5, 1, 9, 0))


class TestGroupEngagement:
    """The group score weights each member's score by their role's weight, then takes a square root."""

    @pytest.mark.parametrize(
        ("members", "expected"),
        [
            pytest.param([], 0.0, id="no-members"),
            pytest.param([(0.0, 100), (0.0, 20)], 0.0, id="nobody-engaged"),  # mean 0 -> 0
            pytest.param([(100.0, 100)], 100.0, id="one-member-at-100"),  # mean 100 -> 10 * sqrt(100) = 100
            pytest.param([(25.0, 20)], 50.0, id="one-member-at-25"),  # mean 25 -> 10 * sqrt(25) = 50
            pytest.param([(64.0, 60), (36.0, 60)], 70.710678, id="equal-weights-plain-mean"),
            # (64 + 36) / 2 = 50 -> 10 * sqrt(50) = 70.710678
            pytest.param([(100.0, 100), (0.0, 20)], 91.287093, id="vital-engaged-trivial-idle"),
            # (100*100 + 0*20) / 120 = 83.3333 -> 10 * sqrt(83.3333) = 91.287093
            pytest.param([(0.0, 100), (100.0, 20)], 40.824829, id="trivial-engaged-vital-idle"),
            # (0*100 + 100*20) / 120 = 16.6667 -> 10 * sqrt(16.6667) = 40.824829
            pytest.param([(52.0, 100), (28.0, 80), (17.0, 60)], 59.371710, id="adobe-example"),
            # (52*100 + 28*80 + 17*60) / 240 = (5200 + 2240 + 1020) / 240 = 8460 / 240 = 35.25 (Adobe's 35.25)
            # -> 10 * sqrt(35.25) = 59.371710
            pytest.param([(80.0, 0), (0.0, 0)], 0.0, id="all-weights-zero"),  # no weight, no say -> 0
        ],
    )
    def test_scores(self, members: list[tuple[float, int]], expected: float) -> None:
        """Each case scores the value computed by hand next to it."""
        assert group_engagement(members) == pytest.approx(expected, abs=1e-6)

    def test_vital_member_moves_group_more_than_trivial(self) -> None:
        """The same engagement gain counts five times more in a vital role than in a trivial one."""
        base = [(0.0, 100), (0.0, 20), (49.0, 60)]
        # base: 49*60 / 180 = 2940 / 180 = 16.3333 -> 10 * sqrt(16.3333) = 40.414519
        vital = [(80.0, 100), (0.0, 20), (49.0, 60)]
        # (8000 + 2940) / 180 = 60.7778 -> 10 * sqrt(60.7778) = 77.960104
        trivial = [(0.0, 100), (80.0, 20), (49.0, 60)]
        # (1600 + 2940) / 180 = 25.2222 -> 10 * sqrt(25.2222) = 50.221731
        scores = [group_engagement(members) for members in (base, vital, trivial)]
        assert scores == pytest.approx([40.414519, 77.960104, 50.221731], abs=1e-6)

    @pytest.mark.parametrize(
        ("members", "message"),
        [
            pytest.param([(100.5, 60)], "person score must be within 0-100, got 100.5", id="score-over-100"),
            pytest.param([(-1.0, 60)], "person score must be within 0-100, got -1.0", id="negative-score"),
            pytest.param([(50.0, -20)], "role weight cannot be negative, got -20", id="negative-weight"),
        ],
    )
    def test_invalid_members(self, members: list[tuple[float, int]], message: str) -> None:
        """Scores outside 0-100 and negative weights are refused."""
        with pytest.raises(ValueError, match=message):
            group_engagement(members)


class TestDisplay:
    """Scores are shown as whole numbers, nearest with halves up, as Adobe shows them."""

    @pytest.mark.parametrize(
        ("score", "expected"),
        [
            pytest.param(75.89999, 76, id="adobe-engagement-example"),  # Adobe: 75.89999 -> 76
            pytest.param(200 / 3, 67, id="adobe-completeness-example"),  # 66.67 -> 67
            pytest.param(100 / 3, 33, id="one-of-three"),  # 33.33 -> 33
            pytest.param(12.5, 13, id="half-rounds-up"),  # 12.5 -> 13 (round() would give 12)
            pytest.param(0.5, 1, id="half-above-zero-up"),  # 0.5 -> 1 (round() would give 0)
            pytest.param(0.49, 0, id="below-half-down"),  # 0.49 -> 0
            pytest.param(99.5, 100, id="top-half-up"),  # 99.5 -> 100
            pytest.param(0.0, 0, id="zero"),
            pytest.param(100.0, 100, id="hundred"),
            pytest.param(5.270463, 5, id="one-email-open"),  # 5.27 -> 5
        ],
    )
    def test_display(self, score: float, expected: int) -> None:
        """The displayed value is the nearest whole number, halves up."""
        assert display(score) == expected

    @pytest.mark.parametrize(
        ("assigned", "expected"),
        [pytest.param(1, 33, id="1-of-3"), pytest.param(2, 67, id="2-of-3")],  # 33.33 -> 33; 66.67 -> 67
    )
    def test_completeness_display(self, assigned: int, expected: int) -> None:
        """The documented completeness example shows as 33% for 1 of 3 required."""
        assert display(completeness([RoleFill("decision_maker", 3, assigned)])) == expected
