"""The upsert API of `journey serve` over real HTTP on loopback, on SQLite and a real PostgreSQL: credentials,
a verdict per item, idempotency, change events, and refusals that store nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from engine.db import Account, ActivityEvent, Opportunity, Person
from engine.service import auth
from engine.service.app import ServiceConfig, create_app
from engine.service.serve import serving

ACME = {"id": "acme-corp", "name": "Acme Corp", "domain": "acme-corp.example", "employees": 250, "timezone": "UTC"}


@dataclass
class Api:
    http: httpx.AsyncClient
    db: Engine
    headers: dict[str, str]


@pytest.fixture
async def api(engine: Engine) -> AsyncIterator[Api]:
    key = auth.create_key(engine, "crm-sync")
    async with serving(create_app(ServiceConfig(engine))) as url, httpx.AsyncClient(base_url=url) as http:
        yield Api(http, engine, {"authorization": f"Bearer {key.key}"})


def count(engine: Engine, model: Any) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def changes(engine: Engine, type_: str) -> list[ActivityEvent]:
    with Session(engine) as session:
        return list(
            session.exec(select(ActivityEvent).where(ActivityEvent.type == type_).order_by(col(ActivityEvent.id)))
        )


class TestPut:
    async def test_created_then_unchanged_then_updated(self, api: Api) -> None:
        body = {key: value for key, value in ACME.items() if key != "id"}
        first = await api.http.put("/v1/accounts/acme-corp", json=body, headers=api.headers)
        assert first.status_code == 201, first.text
        assert first.json()["verdict"] == "created"
        again = await api.http.put("/v1/accounts/acme-corp", json=body, headers=api.headers)
        assert (again.status_code, again.json()["verdict"], again.json()["changes"]) == (200, "unchanged", {})
        assert changes(api.db, "account_updated") == []  # unchanged rows record nothing

        moved = await api.http.put(
            "/v1/accounts/acme-corp", json={**body, "employees": 300, "tier": "gold"}, headers=api.headers
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["verdict"] == "updated"
        assert moved.json()["changes"]["employees"] == {"old": 250, "new": 300}
        (event,) = changes(api.db, "account_updated")
        assert event.account_id == "acme-corp"
        assert event.payload["changes"]["employees"] == {"old": 250, "new": 300}
        with Session(api.db) as session:
            account = session.get(Account, "acme-corp")
            assert account is not None
            assert (account.employees, account.attributes) == (300, {"tier": "gold"})

    async def test_a_person_by_email_never_resubscribed(self, api: Api) -> None:
        await api.http.put("/v1/accounts/acme-corp", json=ACME, headers=api.headers)
        path = "/v1/people/Ana@Acme-Corp.example"
        person = {"account_id": "acme-corp", "first_name": "Ana", "unsubscribed": True}
        created = await api.http.put(path, json=person, headers=api.headers)
        assert created.status_code == 201, created.text
        assert created.json()["key"] == "ana@acme-corp.example"
        back = await api.http.put(path, json={**person, "unsubscribed": False, "job_title": "CTO"}, headers=api.headers)
        assert back.status_code == 200, back.text
        with Session(api.db) as session:
            (stored,) = session.exec(select(Person)).all()
        assert (stored.unsubscribed, stored.job_title) == (True, "CTO")

    async def test_rejected_stores_nothing(self, api: Api) -> None:
        answer = await api.http.put(
            "/v1/accounts/acme-corp",
            json={**ACME, "timezone": "Mars/Olympus", "employees": "many"},
            headers=api.headers,
        )
        assert answer.status_code == 422
        problem = answer.json()
        assert problem["error"] == "rejected"
        assert "timezone" in problem["detail"] and "employees" in problem["detail"]
        assert count(api.db, Account) == 0

    async def test_the_path_names_the_record(self, api: Api) -> None:
        answer = await api.http.put("/v1/accounts/other-corp", json=ACME, headers=api.headers)
        assert (answer.status_code, answer.json()["path"]) == (422, "id")
        assert count(api.db, Account) == 0

    async def test_dry_run(self, api: Api) -> None:
        answer = await api.http.put(
            "/v1/accounts/acme-corp", params={"dry_run": "true"}, json=ACME, headers=api.headers
        )
        assert answer.json()["verdict"] == "created"
        assert count(api.db, Account) == 0


class TestBatch:
    async def test_a_verdict_per_item(self, api: Api) -> None:
        await api.http.put("/v1/accounts/acme-corp", json=ACME, headers=api.headers)
        items = [
            ACME,  # unchanged
            {**ACME, "id": "globex", "domain": "globex.example", "name": "Globex"},  # created
            {"id": "bad", "name": "Bad", "country": "Atlantis"},  # rejected
            {"id": "deep", "name": "Deep", "nested": {"a": {"b": 1}}},  # created, `nested` an attribute
            {"id": "nul", "name": "Has\u0000NUL"},  # rejected before any check
        ]
        answer = await api.http.post("/v1/accounts", json={"accounts": items}, headers=api.headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [result["verdict"] for result in body["results"]] == [
            "unchanged",
            "created",
            "rejected",
            "created",
            "rejected",
        ]
        assert (body["created"], body["updated"], body["unchanged"], body["rejected"]) == (2, 0, 1, 2)
        assert body["results"][2]["problems"][0]["field"] == "country"
        assert body["results"][4]["problems"][0]["field"] == "name"
        with Session(api.db) as session:
            assert sorted(account.id for account in session.exec(select(Account))) == ["acme-corp", "deep", "globex"]

    async def test_people_and_opportunities(self, api: Api) -> None:
        await api.http.put("/v1/accounts/acme-corp", json=ACME, headers=api.headers)
        people = [{"email": f"p{n}@acme-corp.example", "account_id": "acme-corp"} for n in range(3)]
        answer = await api.http.post("/v1/people", json={"people": people}, headers=api.headers)
        assert answer.json()["created"] == 3, answer.text
        deal = {"id": "opp-1", "account_id": "acme-corp", "name": "Irrigation", "stage": "Qualify", "amount": 1200.5}
        answer = await api.http.post("/v1/opportunities", json={"opportunities": [deal]}, headers=api.headers)
        assert answer.json()["created"] == 1, answer.text
        assert count(api.db, Opportunity) == 1
        again = await api.http.post("/v1/opportunities", json={"opportunities": [deal]}, headers=api.headers)
        assert again.json()["unchanged"] == 1

    async def test_not_a_number(self, api: Api) -> None:
        body = b'{"accounts": [{"id": "nan-corp", "name": "NaN Corp", "score": NaN}]}'
        answer = await api.http.post("/v1/accounts", content=body, headers=api.headers)
        (result,) = answer.json()["results"]
        assert (result["verdict"], result["problems"][0]["field"]) == ("rejected", "score")
        assert count(api.db, Account) == 0

    async def test_too_many_items(self, api: Api) -> None:
        items = [{"id": f"a{n}", "name": "A"} for n in range(1001)]
        answer = await api.http.post("/v1/accounts", json={"accounts": items}, headers=api.headers)
        assert answer.status_code == 422
        assert "at most 1,000" in answer.json()["detail"]
        assert count(api.db, Account) == 0

    async def test_wrong_shape(self, api: Api) -> None:
        answer = await api.http.post("/v1/accounts", json=[ACME], headers=api.headers)
        assert (answer.status_code, answer.json()["error"]) == (422, "invalid_body")


class TestRefused:
    async def test_no_credentials(self, api: Api) -> None:
        for answer in (
            await api.http.put("/v1/accounts/acme-corp", json=ACME),
            await api.http.post("/v1/accounts", json={"accounts": [ACME]}),
            await api.http.put("/v1/accounts/acme-corp", json=ACME, headers={"authorization": "Bearer jk_nope.nope"}),
        ):
            assert answer.status_code == 401, answer.text
        assert count(api.db, Account) == 0

    async def test_in_the_spec(self, api: Api) -> None:
        spec = (await api.http.get("/openapi.json")).json()
        for path, method in (
            ("/v1/accounts", "post"),
            ("/v1/accounts/{id}", "put"),
            ("/v1/people", "post"),
            ("/v1/people/{email}", "put"),
            ("/v1/opportunities/{id}", "put"),
        ):
            assert spec["paths"][path][method]["security"] == [{"HTTPBearer": []}, {"signature": []}]
