"""The events service against its own OpenAPI spec: schemathesis generates requests from /openapi.json
(valid and invalid bodies, odd paths and tokens) and sends them over real HTTP; no answer may be a server
error, and every answer must match the spec (status code, content type, body schema)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import add_account, add_person

from engine.db import init_db, make_engine
from engine.service import auth
from engine.service.app import ServiceConfig, create_app
from engine.service.serve import free_port
from engine.tracking import Tokens

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The app on a loopback port, served from a thread (schemathesis' tests are synchronous)."""
    folder: Path = tmp_path_factory.mktemp("openapi")
    engine = make_engine(f"sqlite:///{folder / 'journey.db'}")
    init_db(engine)
    add_account(engine)
    add_person(engine, "acme-corp", "ana@acme-corp.example")
    key = auth.create_key(engine, "schemathesis").key
    app = create_app(ServiceConfig(engine, tokens=Tokens(b"openapi-secret", "http://links.example")))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the events service did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", key
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


def _spec() -> dict[str, object]:
    """The spec the app serves at /openapi.json (which depends on no data, so any database will do)."""
    return create_app(ServiceConfig(make_engine("sqlite://"))).openapi()


schema = schemathesis.openapi.from_dict(_spec())


def test_spec_is_what_is_served(served: tuple[str, str]) -> None:
    """The spec the property test uses is the one clients download."""
    assert httpx.get(f"{served[0]}/openapi.json").json() == _spec()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_spec(case: schemathesis.Case, served: tuple[str, str]) -> None:
    """Authenticated requests of every shape: per-event verdicts or a Problem, never a 500."""
    case.call_and_validate(base_url=served[0], headers={"authorization": f"Bearer {served[1]}"}, checks=CHECKS)
