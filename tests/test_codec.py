"""Payload encryption (AES-GCM, JOURNEY_PAYLOAD_KEY, keys that rotate) and the codec endpoint of journey serve
that lets Temporal's UI and CLI show what the histories hold (issue 14)."""

from __future__ import annotations

import base64
import dataclasses
import os
import uuid
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from sqlalchemy.engine import Engine
from support import add_account, add_person, write_journey
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.delivery import OutboxFileDelivery
from engine.runtime import temporal
from engine.runtime.encryption import KEY_ENV, OLD_KEYS_ENV, EncryptionCodec, PayloadKeyError, codec_from_env
from engine.runtime.workers import running_worker
from engine.service import auth
from engine.service.app import ServiceConfig, create_app
from engine.service.serve import serving
from engine.workflow.contracts import JourneyInput, JourneyResult


def key(key_id: str) -> str:
    return f"{key_id}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


def payload(text: str) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([{"email": text}])[0]


class TestEncryption:
    """Sealed payloads hide their content, open with the right key only, and survive a key rotation."""

    async def test_round_trip_hides_the_content(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(KEY_ENV, key("k1"))
        codec = codec_from_env()
        assert codec is not None
        [sealed] = await codec.encode([payload("ana@acme.example")])
        assert b"acme" not in sealed.data and sealed.metadata["encryption-key-id"] == b"k1"
        assert await codec.decode([sealed]) == [payload("ana@acme.example")]

    async def test_rotation_and_wrong_keys(self, monkeypatch: pytest.MonkeyPatch) -> None:
        old, new = key("k1"), key("k2")
        monkeypatch.setenv(KEY_ENV, old)
        before = codec_from_env()
        assert before is not None
        [sealed] = await before.encode([payload("ana@acme.example")])
        monkeypatch.setenv(KEY_ENV, new)
        monkeypatch.setenv(OLD_KEYS_ENV, old)
        rotated = codec_from_env()
        assert rotated is not None and await rotated.decode([sealed]) == [payload("ana@acme.example")]
        monkeypatch.delenv(OLD_KEYS_ENV)
        with pytest.raises(PayloadKeyError, match="sealed with key 'k1'"):
            await codec_from_env().decode([sealed])  # type: ignore[union-attr]
        tampered = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
        with pytest.raises(PayloadKeyError, match="altered"):
            await rotated.decode([tampered])

    def test_a_malformed_key_is_refused_with_how_to_make_one(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(KEY_ENV, "k1:too-short")
        with pytest.raises(PayloadKeyError, match="urlsafe_b64encode"):
            codec_from_env()


async def test_a_journey_runs_on_encrypted_payloads(
    time_env: WorkflowEnvironment, db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of the account or its people is readable in the stored history; the journey runs as usual."""
    monkeypatch.setenv(KEY_ENV, key("k1"))
    body = "- id: intro\n  type: send_email\n  to: all\n  subject: Hi\n  template: emails/a.html.j2\n  next: done\n"
    body += "- id: done\n  type: end\n"
    plan = write_journey(tmp_path, body, start="intro", templates={"emails/a.html.j2": "<p>Hi</p>\n"})
    add_account(db, name="Secretive Corp")
    add_person(db, "acme-corp", "ana@acme-corp.example", first_name="Ana")
    converter = dataclasses.replace(pydantic_data_converter, payload_codec=temporal.payload_codec(db))
    client = Client(**{**time_env.client.config(), "data_converter": converter})
    task_queue = f"sealed-{uuid.uuid4()}"
    async with running_worker(client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
        handle = await client.start_workflow(
            "Journey",
            JourneyInput(plan=plan, account_id="acme-corp"),
            id=f"sealed-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=JourneyResult,
        )
        assert (await handle.result()).emails_sent == 1
    history = await time_env.client.get_workflow_handle(handle.id).fetch_history()
    stored = history.to_json().encode()
    assert b"Secretive" not in stored and b"acme-corp.example" not in stored


async def test_codec_endpoint(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a key set, journey serve decodes for Temporal's UI and CLI, to callers with an API key only."""
    monkeypatch.setenv(KEY_ENV, key("k1"))
    api_key = auth.create_key(db, "operators").key
    codec = codec_from_env()
    assert isinstance(codec, EncryptionCodec)
    sealed = await codec.encode([payload("ana@acme.example")])
    body = json_format.MessageToDict(Payloads(payloads=sealed))
    async with serving(create_app(ServiceConfig(db))) as url, httpx.AsyncClient(base_url=url) as http:
        refused = await http.post("/codec/decode", json=body)
        assert refused.status_code == 401
        answer = await http.post("/codec/decode", json=body, headers={"authorization": f"Bearer {api_key}"})
        assert answer.status_code == 200, answer.text
        decoded = json_format.ParseDict(answer.json(), Payloads())
        assert list(decoded.payloads) == [payload("ana@acme.example")]
        bad = await http.post("/codec/decode", json={"payloads": "x"}, headers={"authorization": f"Bearer {api_key}"})
        assert bad.status_code == 422
