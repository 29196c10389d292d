"""Custom event types declared in journeys/events.yaml: checked with located messages, waited for by
journeys, accepted by the events service."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from support import add_account, write_journey

from engine.language import catalog
from engine.language.errors import JourneyInvalidError
from engine.language.event_types import load_event_types
from engine.service import auth
from engine.service.app import ServiceConfig, create_app
from engine.service.serve import serving

WEBINAR = """\
events:
  - type: webinar_registered
    description: signed up on the webinar platform
    fields: [webinar, session]
"""
WAIT = """
- id: wait_signup
  type: wait_for_event
  event: webinar_registered
  where: "event.webinar == 'soil-health'"
  timeout: 7d
  on_event: done
  on_timeout: done
- id: done
  type: end
"""


class TestDeclaration:
    """A declared type is known to the compiler with its fields; a bad file is reported line by line."""

    def test_journey_waits_for_custom_type(self, tmp_path: Path) -> None:
        (tmp_path / "events.yaml").write_text(WEBINAR)
        plan = write_journey(tmp_path, WAIT, start="wait_signup")
        assert plan.nodes["wait_signup"].event == "webinar_registered"  # type: ignore[union-attr]

    def test_undeclared_field(self, tmp_path: Path) -> None:
        (tmp_path / "events.yaml").write_text(WEBINAR)
        with pytest.raises(JourneyInvalidError) as error:
            write_journey(tmp_path, WAIT.replace("event.webinar ==", "event.webnar =="), start="wait_signup")
        assert "unknown attribute 'event.webnar' (did you mean 'webinar'?)" in str(error.value)

    def test_without_declaration_the_type_is_unknown(self, tmp_path: Path) -> None:
        with pytest.raises(JourneyInvalidError) as error:
            write_journey(tmp_path, WAIT, start="wait_signup")
        assert "node 'wait_signup': event: unknown event type 'webinar_registered'" in str(error.value)

    def test_broken_file(self, tmp_path: Path) -> None:
        (tmp_path / "events.yaml").write_text("events:\n  - type: Bad-Name\n")
        with pytest.raises(JourneyInvalidError) as error:
            load_event_types(tmp_path)
        assert [issue.render().split("/")[-1] for issue in error.value.issues] == [
            "events.yaml:2:11: events[0].type: 'Bad-Name' is not allowed here: use lowercase letters, digits and "
            "'_', starting with a letter (^[a-z][a-z0-9_]*$)"
        ]
        (tmp_path / "events.yaml").write_text(
            "events:\n  - type: form_fill\n  - type: demo_booked\n  - type: demo_booked\n"
        )
        with pytest.raises(JourneyInvalidError) as error:
            load_event_types(tmp_path)
        assert [issue.render().split("/")[-1] for issue in error.value.issues] == [
            "events.yaml:2:11: 'form_fill' is a built-in event type: choose another name",
            "events.yaml:4:11: event type 'demo_booked' is declared twice",
        ]

    def test_problems_reported_with_the_journey(self, tmp_path: Path) -> None:
        """A broken events.yaml shows up when validating the journeys beside it."""
        write_journey(tmp_path, "- id: done\n  type: end\n", start="done")
        (tmp_path / "events.yaml").write_text("events:\n  - type: form_fill\n")
        rendered = [issue.render().split("/")[-1] for issue in catalog.validate([tmp_path]).issues]
        assert rendered == ["events.yaml:2:11: 'form_fill' is a built-in event type: choose another name"]


async def test_service_accepts_custom_type(db: Engine, tmp_path: Path) -> None:
    """The service takes a declared type and still rejects an undeclared one."""
    (tmp_path / "events.yaml").write_text(WEBINAR)
    add_account(db)
    key = auth.create_key(db, "events").key
    app = create_app(ServiceConfig(db, types=load_event_types(tmp_path)))
    batch = {
        "events": [
            {
                "type": "webinar_registered",
                "event_id": "w1",
                "account": {"id": "acme-corp"},
                "payload": {"webinar": "x"},
            },
            {"type": "webinar_attended", "event_id": "w2", "account": {"id": "acme-corp"}},
        ]
    }
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post("/v1/events", json=batch, headers={"authorization": f"Bearer {key}"})
    results = answer.json()["results"]
    assert [result["status"] for result in results] == ["accepted", "rejected"]
    assert results[1]["reason"].startswith("unknown event type 'webinar_attended' (did you mean 'webinar_registered'?)")
