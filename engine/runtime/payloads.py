"""Large values of Temporal payloads stored once, by reference (Temporal's claim-check pattern).

Every account's workflow input carries its journey's whole Plan (nodes, templates, role template), and every
`send_email` input its template bodies: 100,000 accounts on one version stored 100,000 copies in Temporal's
histories, billed per byte on Temporal Cloud. This codec replaces the first-level values of a JSON payload that
every account of a version shares (SHARED: the Plan, role templates, template bodies, limits.yaml) with
`{"$blob": "<sha256>"}` once they reach their size, and keeps each value once in the journey database
(db.PayloadBlob), so a history holds a 64-character key where it held kilobytes. Values of other keys stay
inline however large: they belong to one account, may hold personal data, and must stay under payload
encryption (the blob table is not encrypted) and within reach of erasure. Decoding puts the values back;
payloads written before (or by a client without the codec) carry no `journey-blobs` mark and pass unchanged.

Content-addressed values never change, so both directions cache in memory: a worker reads each Plan once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from engine.db import PayloadBlob

MIN_SIZE = 1024  # bytes of JSON: a shared value smaller than this stays inline
# Keys whose values are the same for every account of a journey version, from the size where a reference
# (~76 bytes) pays: template bodies always go by reference, so `send_email` inputs carry none.
SHARED = {"plan": MIN_SIZE, "role_template": MIN_SIZE, "html_template": 96, "text_template": 96, "limits": 96}
_SHARED_KEYS = tuple(f'"{key}"'.encode() for key in SHARED)
MARK = "journey-blobs"
REFERENCE = "$blob"
CACHED = 256  # values kept decoded in memory (Plans and templates of the versions running)


class BlobNotFoundError(LookupError):
    """A payload refers to a value the journey database does not hold: a worker pointed at another database."""


class ClaimCheckCodec(PayloadCodec):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._values: OrderedDict[str, bytes] = OrderedDict()  # digest -> the value's JSON
        self._stored: set[str] = set()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        encoded = []
        for payload in payloads:
            shareable = any(key in payload.data for key in _SHARED_KEYS)
            if payload.metadata.get("encoding") != b"json/plain" or not shareable:
                encoded.append(payload)
                continue
            value = json.loads(payload.data)
            if not isinstance(value, dict):
                encoded.append(payload)
                continue
            blobs: dict[str, bytes] = {}
            for key, item in value.items():
                if key not in SHARED:
                    continue
                data = json.dumps(item, separators=(",", ":"), sort_keys=True).encode()
                if len(data) >= SHARED[key]:
                    digest = hashlib.sha256(data).hexdigest()
                    blobs[digest] = data
                    value[key] = {REFERENCE: digest}
            if not blobs:
                encoded.append(payload)
                continue
            await self._store(blobs)
            metadata = {**payload.metadata, MARK: b"1"}
            encoded.append(Payload(metadata=metadata, data=json.dumps(value, separators=(",", ":")).encode()))
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if MARK not in payload.metadata:
                decoded.append(payload)
                continue
            value = json.loads(payload.data)
            digests = [item[REFERENCE] for item in value.values() if _is_reference(item)]
            found = await self._load(digests)
            restored = {
                key: json.loads(found[item[REFERENCE]]) if _is_reference(item) else item for key, item in value.items()
            }
            metadata = {key: data for key, data in payload.metadata.items() if key != MARK}
            decoded.append(Payload(metadata=metadata, data=json.dumps(restored, separators=(",", ":")).encode()))
        return decoded

    async def _store(self, blobs: dict[str, bytes]) -> None:
        new = {digest: data for digest, data in blobs.items() if digest not in self._stored}
        if new:
            await asyncio.to_thread(self._insert, new)
            self._stored.update(new)
        for digest, data in blobs.items():
            self._remember(digest, data)

    def _insert(self, blobs: dict[str, bytes]) -> None:
        with Session(self._engine) as session:
            known = set(session.exec(select(PayloadBlob.digest).where(col(PayloadBlob.digest).in_(blobs))).all())
            session.add_all(
                PayloadBlob(digest=digest, data=data) for digest, data in blobs.items() if digest not in known
            )
            try:
                session.commit()
                return
            except IntegrityError:  # another process stored some of them meanwhile: one by one, each once
                session.rollback()
        for digest, data in blobs.items():
            with Session(self._engine) as session:
                if session.get(PayloadBlob, digest) is None:
                    session.add(PayloadBlob(digest=digest, data=data))
                    with contextlib.suppress(IntegrityError):  # content-addressed: the other copy is the same
                        session.commit()

    async def _load(self, digests: list[str]) -> dict[str, bytes]:
        missing = [digest for digest in digests if digest not in self._values]
        if missing:
            for digest, data in (await asyncio.to_thread(self._select, missing)).items():
                if hashlib.sha256(data).hexdigest() != digest:
                    raise BlobNotFoundError(f"payload value {digest} is corrupt in the journey database")
                self._remember(digest, data)
        absent = [digest for digest in digests if digest not in self._values]
        if absent:
            raise BlobNotFoundError(
                f"payload value {absent[0]} is not in the journey database: is this worker on the database the "
                "journeys were published with (JOURNEY_DATABASE_URL)?"
            )
        return {digest: self._values[digest] for digest in digests}

    def _select(self, digests: list[str]) -> dict[str, bytes]:
        with Session(self._engine) as session:
            rows = session.exec(select(PayloadBlob).where(col(PayloadBlob.digest).in_(digests))).all()
            return {row.digest: bytes(row.data) for row in rows}

    def _remember(self, digest: str, data: bytes) -> None:
        self._values[digest] = data
        self._values.move_to_end(digest)
        while len(self._values) > CACHED:
            self._values.popitem(last=False)


def _is_reference(item: Any) -> bool:
    return isinstance(item, dict) and len(item) == 1 and isinstance(item.get(REFERENCE), str)
