"""Journey lifecycle states in the database (SQLite and PostgreSQL): every transition, its event-log row, what
publishing a closed journey says, and when entry is open under a schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from support import write_journey

from engine.db import ActivityEvent, JourneyStatus
from engine.language.model import JourneyFile
from engine.language.plan import Plan
from engine.language.schedule_model import Schedule
from engine.runtime import journey_state
from engine.runtime.journey_state import JourneyStateError
from engine.runtime.publish import store_version

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
BODY = "- id: done\n  type: end\n"


def plan(folder: Path, journey: str = "life", schedule: str = "") -> Plan:
    return write_journey(folder, BODY, start="done", journey=journey, header_extra=schedule)


def changes(engine: Engine, journey: str = "life") -> list[tuple[str, str, str, str | None]]:
    """(from, to, by, reason) of every journey_state_changed row of the journey, in order."""
    with Session(engine) as session:
        rows = session.exec(
            select(ActivityEvent)
            .where(ActivityEvent.type == journey_state.EVENT_TYPE, ActivityEvent.journey_id == journey)
            .order_by(col(ActivityEvent.id))
        ).all()
    return [(row.payload["from"], row.payload["to"], row.payload["by"], row.payload["reason"]) for row in rows]


def publish_now(engine: Engine, journey_plan: Plan, at: datetime = NOW) -> str:
    before = journey_state.make_live(engine, journey_plan, "ann", at)
    store_version(engine, journey_plan)
    return before


class TestTransitions:
    """Each change of state is stored and logged once, with who and why."""

    def test_draft_live_closed_finished(self, engine: Engine, tmp_path: Path) -> None:
        """Publishing makes a draft live, republishing keeps it live, close closes it, finish records the end."""
        journey_plan = plan(tmp_path)
        assert journey_state.lifecycle(engine, "life", NOW) is None
        assert publish_now(engine, journey_plan) == journey_state.DRAFT
        assert publish_now(engine, journey_plan) == journey_state.LIVE
        assert journey_state.close(engine, "life", "bob", "campaign over", NOW)
        assert not journey_state.close(engine, "life", "bob", "again", NOW)
        assert journey_state.finish(engine, "life", NOW + timedelta(days=1))
        found = journey_state.lifecycle(engine, "life", NOW)
        assert found is not None and (found.state, found.changed_by) == ("finished", "engine")
        assert changes(engine) == [
            ("draft", "live", "ann", None),
            ("live", "closed", "bob", "campaign over"),
            ("closed", "finished", "engine", "nobody left running"),
        ]

    def test_stop_from_live_and_from_closed(self, engine: Engine, tmp_path: Path) -> None:
        """Stop works on a live or a closed journey; stopping again changes nothing; a stopped one is not closed."""
        publish_now(engine, plan(tmp_path, "one"))
        publish_now(engine, plan(tmp_path, "two"))
        assert journey_state.stop(engine, "one", "bob", "wrong audience", NOW)
        assert not journey_state.stop(engine, "one", "bob", "again", NOW)
        journey_state.close(engine, "two", "bob", None, NOW)
        assert journey_state.stop(engine, "two", "cy", "legal hold", NOW)
        assert changes(engine, "one") == [("draft", "live", "ann", None), ("live", "stopped", "bob", "wrong audience")]
        assert changes(engine, "two")[-1] == ("closed", "stopped", "cy", "legal hold")
        with pytest.raises(JourneyStateError, match="'one' is stopped already"):
            journey_state.close(engine, "one", "bob", None, NOW)

    def test_journey_published_before_states_is_live(self, engine: Engine, tmp_path: Path) -> None:
        """A version without a state row (published before states existed) is live, and can be closed."""
        store_version(engine, plan(tmp_path))
        found = journey_state.lifecycle(engine, "life", NOW)
        assert found is not None and found.state == "live"
        assert journey_state.close(engine, "life", "bob", None, NOW)
        assert changes(engine) == [("live", "closed", "bob", None)]

    def test_unknown_journey_refused_with_suggestion(self, engine: Engine, tmp_path: Path) -> None:
        """Closing or stopping an id that was never published says so, with the nearest id and what to do."""
        publish_now(engine, plan(tmp_path, "spring-launch"))
        with pytest.raises(JourneyStateError) as refused:
            journey_state.close(engine, "spring-lunch", "bob", None, NOW)
        assert str(refused.value) == (
            "journey 'spring-lunch' was never published (did you mean 'spring-launch'?): see `journey list` for the "
            "journeys there are, or publish it first with `journey publish FILE`"
        )
        with pytest.raises(JourneyStateError, match="never published"):
            journey_state.stop(engine, "nothing", "bob", "why", NOW)


class TestPublishingEndedJourneys:
    """Closed, stopped and finished journeys are not reopened by publishing (as in AJO)."""

    @pytest.mark.parametrize("end", ["close", "stop", "finish"])
    def test_refused_with_what_to_do(self, engine: Engine, tmp_path: Path, end: str) -> None:
        """Publishing again is refused with the state, who ended it, and the way out: a new journey id."""
        journey_plan = plan(tmp_path)
        publish_now(engine, journey_plan)
        if end == "stop":
            journey_state.stop(engine, "life", "bob", "done", NOW)
        else:
            journey_state.close(engine, "life", "bob", "done", NOW)
        if end == "finish":
            journey_state.finish(engine, "life", NOW)
        state = {"close": "closed", "stop": "stopped", "finish": "finished"}[end]
        who = "engine: nobody left running" if end == "finish" else "bob: done"
        with pytest.raises(JourneyStateError) as refused:
            journey_state.make_live(engine, journey_plan, "ann", NOW)
        assert str(refused.value) == (
            f"journey 'life' is {state} (by {who}) and is not reopened: its accounts' history stays as it is. "
            "To run it again, publish it under a new journey id (change `journey:` in the file)"
        )

    def test_schedule_end_in_the_past_refused(self, engine: Engine, tmp_path: Path) -> None:
        """A version whose schedule.end has passed is refused before anything is stored."""
        journey_plan = plan(tmp_path, schedule="schedule:\n  end: 2027-01-01T00:00:00Z\n")
        with pytest.raises(JourneyStateError) as refused:
            journey_state.make_live(engine, journey_plan, "ann", NOW)
        assert str(refused.value) == (
            "journey 'life': schedule.end 2027-01-01 00:00 UTC has passed, so nobody could enter: "
            "move schedule.end later, or remove it"
        )
        assert journey_state.lifecycle(engine, "life", NOW) is None


class TestSchedule:
    """Entry opens at schedule.start and closes at schedule.end, judged at the moment asked."""

    def test_entry_window(self, engine: Engine, tmp_path: Path) -> None:
        """Before start: not open yet; between: open; from end on: closed, and recorded once by the schedule."""
        schedule = "schedule:\n  start: 2027-02-01T09:00:00+01:00\n  end: 2027-03-01T09:00:00+01:00\n"
        publish_now(engine, plan(tmp_path, schedule=schedule))
        opens, closes = datetime(2027, 2, 1, 8, tzinfo=UTC), datetime(2027, 3, 1, 8, tzinfo=UTC)
        assert journey_state.entry_refusal(engine, "life", opens - timedelta(seconds=1)) == (
            "journey 'life' opens for entry at 2027-02-01 08:00 UTC"
        )
        assert journey_state.entry_refusal(engine, "life", opens) is None
        assert journey_state.entry_refusal(engine, "life", closes) == (
            "journey 'life' closed for entry at 2027-03-01 08:00 UTC (schedule.end)"
        )
        assert not journey_state.close_on_schedule(engine, "life", closes - timedelta(seconds=1))
        assert journey_state.close_on_schedule(engine, "life", closes)
        assert not journey_state.close_on_schedule(engine, "life", closes)
        assert changes(engine)[-1] == ("live", "closed", "schedule", "schedule.end reached")
        with Session(engine) as session:
            row = session.get(JourneyStatus, "life")
            assert row is not None and (row.schedule_start, row.schedule_end) == (opens, closes)

    def test_not_live_refuses_entry(self, engine: Engine, tmp_path: Path) -> None:
        """Unpublished, closed and stopped journeys take nobody."""
        assert journey_state.entry_refusal(engine, "life", NOW) == "journey 'life' is not published"
        publish_now(engine, plan(tmp_path))
        journey_state.close(engine, "life", "bob", None, NOW)
        assert journey_state.entry_refusal(engine, "life", NOW) == "journey 'life' is closed"

    def test_republish_moves_the_schedule(self, engine: Engine, tmp_path: Path) -> None:
        """A live journey published again takes the new version's schedule (and dropping it opens entry now)."""
        publish_now(engine, plan(tmp_path, schedule="schedule:\n  start: 2027-06-01T00:00:00Z\n"))
        assert journey_state.entry_refusal(engine, "life", NOW) is not None
        publish_now(engine, plan(tmp_path))
        assert journey_state.entry_refusal(engine, "life", NOW) is None


class TestScheduleModel:
    """The `schedule` header in the model and the JSON Schema editors use."""

    def test_offsets_kept_and_compared_as_instants(self) -> None:
        """09:00+01:00 and 08:00Z are one instant: an end there is not after the start."""
        schedule = Schedule.model_validate({"start": "2027-01-04T09:00:00+01:00", "end": "2027-01-04T08:00:01Z"})
        assert schedule.end is not None and schedule.start is not None
        assert schedule.end - schedule.start == timedelta(seconds=1)
        with pytest.raises(ValueError, match=r"is not after schedule\.start"):
            Schedule.model_validate({"start": "2027-01-04T09:00:00+01:00", "end": "2027-01-04T08:00:00Z"})

    def test_json_schema_has_schedule(self) -> None:
        """The journey schema offers `schedule` with ISO 8601 date-time strings."""
        schema = JourneyFile.model_json_schema(mode="validation")
        definition = schema["$defs"]["Schedule"]["properties"]
        assert definition["start"]["anyOf"][0] == {
            "type": "string",
            "format": "date-time",
            "examples": ["2027-01-04T09:00:00+01:00"],
        }
        assert set(definition) == {"start", "end"}

    def test_plan_without_schedule_keeps_its_version(self, tmp_path: Path) -> None:
        """A journey without a schedule serialises as before schedules existed (same version, same payloads)."""
        journey_plan = plan(tmp_path)
        assert "schedule" not in journey_plan.model_dump(mode="json")
        scheduled = plan(tmp_path, "other", "schedule:\n  start: 2027-06-01T00:00:00Z\n")
        assert scheduled.model_dump(mode="json")["schedule"] == {"start": "2027-06-01T00:00:00+00:00", "end": None}
