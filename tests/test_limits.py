"""limits.yaml as a file: loaded next to the journeys, pinned into the Plan of each journey that sends email,
absent from the Plans (and their versions) of the others; quiet hours computed in the account's time zone.
Broken files are in the broken corpus (tests/broken/36*_limits_*)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import write_journey

from engine.language.limits import LimitsFile, QuietHours, quiet_until
from engine.language.render import node_summary
from engine.language.workspace import load_workspace

REPO = Path(__file__).resolve().parent.parent
LIMITS = """\
person:
  - {max: 1, per: 1d}
  - {max: 3, per: 7d}
account:
  - {max: 10, per: 7d}
quiet_hours:
  start: "20:00"
  end: "08:00"
"""
EMAIL = """
- id: hello
  type: send_email
  to: all
  subject: Hello
  template: emails/hello.html.j2
  next: done
- id: done
  type: end
"""
WAIT = """
- id: pause
  type: wait
  duration: 1d
  next: done
- id: done
  type: end
"""
TEMPLATES = {"emails/hello.html.j2": "<p>Hello</p>\n"}
OVERNIGHT = QuietHours(start="20:00", end="08:00")


class TestQuietUntil:
    """The end of the quiet hours around a moment, in the account's zone; None outside them."""

    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            (datetime(2026, 3, 2, 21, 30, tzinfo=UTC), datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),  # evening
            (datetime(2026, 3, 2, 6, 0, tzinfo=UTC), datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),  # after midnight
            (datetime(2026, 3, 2, 20, 0, tzinfo=UTC), datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),  # start is inside
            (datetime(2026, 3, 2, 8, 0, tzinfo=UTC), None),  # end is outside
            (datetime(2026, 3, 2, 12, 0, tzinfo=UTC), None),
        ],
    )
    def test_overnight_in_utc(self, now: datetime, expected: datetime | None) -> None:
        assert quiet_until(OVERNIGHT, now, "UTC") == expected

    def test_same_day_hours(self) -> None:
        lunch = QuietHours(start="12:00", end="13:30")
        assert quiet_until(lunch, datetime(2026, 3, 2, 12, 10, tzinfo=UTC), None) == datetime(
            2026, 3, 2, 13, 30, tzinfo=UTC
        )
        assert quiet_until(lunch, datetime(2026, 3, 2, 14, 0, tzinfo=UTC), None) is None

    def test_in_the_accounts_zone(self) -> None:
        """06:00 UTC is 22:00 in Los Angeles (PST): quiet until 08:00 there, 16:00 UTC."""
        now = datetime(2026, 1, 15, 6, 0, tzinfo=UTC)
        assert quiet_until(OVERNIGHT, now, "America/Los_Angeles") == datetime(2026, 1, 15, 16, 0, tzinfo=UTC)
        assert quiet_until(OVERNIGHT, now, "Asia/Tokyo") is None  # 15:00 there

    def test_across_a_clock_change(self) -> None:
        """The night Amsterdam moves to summer time, 08:00 local is 06:00 UTC."""
        now = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 CET
        assert quiet_until(OVERNIGHT, now, "Europe/Amsterdam") == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)

    def test_unknown_zone_is_utc(self) -> None:
        now = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
        assert quiet_until(OVERNIGHT, now, "Mars/Olympus") == quiet_until(OVERNIGHT, now, "UTC")


class TestPinnedInThePlan:
    """A journey that sends email carries the workspace's limits; one that does not, and every journey of a
    workspace without limits.yaml, compiles to exactly the Plan (and version) it had before limits existed."""

    def test_sending_journey_carries_the_limits(self, tmp_path: Path) -> None:
        (tmp_path / "limits.yaml").write_text(LIMITS)
        plan = write_journey(tmp_path, EMAIL, "hello", templates=TEMPLATES)
        assert plan.limits == LimitsFile.model_validate(
            {
                "person": [{"max": 1, "per": "1d"}, {"max": 3, "per": "7d"}],
                "account": [{"max": 10, "per": "7d"}],
                "quiet_hours": {"start": "20:00", "end": "08:00"},
            }
        )
        assert plan.limits is not None and plan.limits.person[1].reason("person") == "limit:person:3/7d"

    def test_changing_the_limits_changes_the_version(self, tmp_path: Path) -> None:
        without = write_journey(tmp_path, EMAIL, "hello", templates=TEMPLATES).version
        (tmp_path / "limits.yaml").write_text(LIMITS)
        with_limits = write_journey(tmp_path, EMAIL, "hello", templates=TEMPLATES).version
        (tmp_path / "limits.yaml").write_text(LIMITS.replace("max: 10", "max: 12"))
        assert len({without, with_limits, write_journey(tmp_path, EMAIL, "hello", templates=TEMPLATES).version}) == 3

    def test_journey_without_email_is_untouched(self, tmp_path: Path) -> None:
        before = write_journey(tmp_path, WAIT, "pause")
        (tmp_path / "limits.yaml").write_text(LIMITS)
        after = write_journey(tmp_path, WAIT, "pause")
        assert after.limits is None
        assert after.version == before.version
        assert "limits" not in after.model_dump(mode="json")

    def test_not_transactional_serialises_as_before(self, tmp_path: Path) -> None:
        plan = write_journey(tmp_path, EMAIL, "hello", templates=TEMPLATES)
        assert "transactional" not in plan.nodes["hello"].model_dump(mode="json")
        receipt = write_journey(
            tmp_path, EMAIL.replace("to: all", "to: all\n  transactional: true"), "hello", templates=TEMPLATES
        )
        assert receipt.nodes["hello"].model_dump(mode="json")["transactional"] is True
        assert node_summary(receipt.nodes["hello"]) == "email 'hello' to everyone (transactional)"
        assert receipt.version != plan.version

    def test_empty_file_is_no_limits(self, tmp_path: Path) -> None:
        (tmp_path / "limits.yaml").write_text("# nothing capped yet\n")
        workspace = load_workspace(tmp_path)
        assert (workspace.limits, workspace.issues) == (None, [])


def test_schema_command_describes_limits() -> None:
    """`journey schema limits` prints a JSON Schema with the file's keys, for editors."""
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "schema", "limits"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert set(schema["properties"]) == {"person", "account", "buying_group", "quiet_hours"}
    assert schema["additionalProperties"] is False


def test_reason_names_the_window_in_days() -> None:
    assert LimitsFile.model_validate({"account": [{"max": 2, "per": "2w"}]}).account[0].reason("account") == (
        "limit:account:2/14d"
    )
    assert timedelta(hours=12) == LimitsFile.model_validate({"person": [{"max": 1, "per": "12h"}]}).person[0].per


def test_documented_example_is_valid(tmp_path: Path) -> None:
    """docs/examples/limits.yaml, copied next to a journey, loads without problems and is pinned into its Plan."""
    (tmp_path / "limits.yaml").write_text((REPO / "docs" / "examples" / "limits.yaml").read_text())
    workspace = load_workspace(tmp_path)
    assert workspace.issues == []
    plan = write_journey(tmp_path, EMAIL, "hello", templates=TEMPLATES)
    assert plan.limits is not None and plan.limits.quiet_hours == OVERNIGHT
    assert [cap.reason("person") for cap in plan.limits.person] == ["limit:person:1/1d", "limit:person:3/7d"]
