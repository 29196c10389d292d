"""Who may send events: API keys (stored as SHA-256 hashes, shown once) and HMAC-signed webhook requests.

Keys are 160 random bits, so a plain SHA-256 is enough to store them (a slow password hash protects
guessable secrets, not random ones) and lets every request be checked with one primary-key lookup.
A signed webhook proves the whole request, not just its body:

    X-Journey-Timestamp: <unix seconds>
    X-Journey-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<METHOD>.<path?query>.<raw body>")>

where timestamp is the header's text, METHOD the request method in capitals and path?query the path as
sent, percent-encoding untouched, followed by `?` and the query string when there is one. A signature
therefore holds for one method, path and query: a captured form post cannot be replayed to another form
or read the analytics. A timestamp more than five minutes away is refused so it cannot be replayed later
either.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from engine.db import ApiKey, utcnow
from engine.tracking import check_secret

KEY_PREFIX = "jk_"
SIGNATURE_WINDOW_SECONDS = 300
WEBHOOK_SECRET_ENV = "JOURNEY_WEBHOOK_SECRET"
SIGNED = "<timestamp>.<METHOD>.<path?query>.<raw body>"
# Unix seconds in ASCII digits: int() would also take '²' or Arabic digits, and 400 digits overflow a float.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class AuthError(Exception):
    """A request whose credentials do not hold; `status` is 401 (who are you?) or 403 (not any more)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Caller:
    """Who sent a request, for logs: an API key's id and name, or the webhook signature."""

    kind: str
    name: str


@dataclass(frozen=True)
class CreatedKey:
    id: str
    name: str
    key: str
    expires_at: datetime | None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, name: str, expires_in: timedelta | None = None) -> CreatedKey:
    """A new key; the returned `key` is the only time the secret exists outside the caller's hands."""
    key_id = f"{KEY_PREFIX}{secrets.token_hex(4)}"
    key = f"{key_id}_{secrets.token_urlsafe(20)}"
    expires_at = utcnow() + expires_in if expires_in is not None else None
    with Session(engine) as session:
        session.add(ApiKey(id=key_id, name=name, secret_hash=_digest(key), expires_at=expires_at))
        session.commit()
    return CreatedKey(key_id, name, key, expires_at)


def list_keys(engine: Engine) -> list[ApiKey]:
    with Session(engine) as session:
        return list(session.exec(select(ApiKey).order_by(col(ApiKey.created_at))).all())


def revoke_key(engine: Engine, key_id: str) -> bool:
    """Revoke by id; False when no such key exists. Revoking twice keeps the first time."""
    with Session(engine) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            return False
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.commit()
        return True


def check_bearer(engine: Engine, authorization: str, cache: KeyCache | None = None) -> Caller:
    """The caller behind `Authorization: Bearer <key>`, or AuthError saying what is wrong with it."""
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise AuthError("the Authorization header must be 'Bearer <api key>'")
    key_id = key[: key.find("_", len(KEY_PREFIX))] if key.startswith(KEY_PREFIX) else ""
    row = cache.get(key_id) if cache is not None else None
    if row is None and key_id:
        with Session(engine) as session:
            row = session.get(ApiKey, key_id)
        if cache is not None and row is not None:
            cache.put(row)
    if row is None or not hmac.compare_digest(row.secret_hash, _digest(key)):
        raise AuthError("unknown API key: create one with `journey api-key create NAME`")
    if row.revoked_at is not None:
        raise AuthError(f"API key '{row.id}' was revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC", status=403)
    expires_at = row.expires_at
    if expires_at is not None and _aware(expires_at) <= utcnow():
        raise AuthError(f"API key '{row.id}' expired on {expires_at:%Y-%m-%d %H:%M} UTC", status=403)
    return Caller("api_key", f"{row.id} ({row.name})")


class KeyCache:
    """Keys read in the last `ttl` seconds, so a busy sender costs no database read per request; a
    revocation therefore takes effect within `ttl` (one second by default)."""

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._rows: dict[str, tuple[float, ApiKey]] = {}

    def get(self, key_id: str) -> ApiKey | None:
        found = self._rows.get(key_id)
        if found is None or time.monotonic() - found[0] > self.ttl:
            return None
        return found[1]

    def put(self, row: ApiKey) -> None:
        if len(self._rows) > 10_000:  # keys are few; a flood of made-up ids must not grow this forever
            self._rows.clear()
        self._rows[row.id] = (time.monotonic(), row)


def webhook_secrets() -> list[bytes]:
    """JOURNEY_WEBHOOK_SECRET; several, comma-separated, while a secret is being rotated. ValueError when
    one is too short to sign with, so the service refuses to start rather than accept guessable signatures."""
    raw = os.environ.get(WEBHOOK_SECRET_ENV, "")
    found = [part.strip().encode() for part in raw.split(",") if part.strip()]
    for number, secret in enumerate(found, 1):
        check_secret(WEBHOOK_SECRET_ENV if len(found) == 1 else f"{WEBHOOK_SECRET_ENV} (secret {number})", secret)
    return found


def signed_text(timestamp: int | str, method: str, target: str, body: bytes) -> bytes:
    """What a sender signs: `<timestamp>.<METHOD>.<path?query>.<raw body>` (see the module's docstring).
    The target is ASCII on the wire; latin-1 gives back the exact bytes of whatever arrived."""
    return f"{timestamp}.{method.upper()}.{target}.".encode("latin-1") + body


def sign(secret: bytes, timestamp: int | str, method: str, target: str, body: bytes) -> str:
    """The `X-Journey-Signature` value a sender computes (and tests use)."""
    return _signature(secret, signed_text(timestamp, method, target, body)).decode()


def _signature(secret: bytes, message: bytes) -> bytes:
    return b"sha256=" + hmac.new(secret, message, hashlib.sha256).hexdigest().encode()


def check_signature(
    keys: list[bytes],
    signature: str,
    timestamp: str | None,
    method: str,
    target: str,
    body: bytes,
    now: float | None = None,
) -> Caller:
    """The signature holds for this method, target and body under one of `keys`, and was made within the
    last five minutes. `target` is the path as received, plus `?query` when there is one."""
    if not keys:
        raise AuthError(f"signed webhooks are off: set {WEBHOOK_SECRET_ENV} on the server, or send an API key")
    stamp = (timestamp or "").strip()
    if not _TIMESTAMP.fullmatch(stamp):
        raise AuthError(
            "a signed request needs X-Journey-Timestamp: the unix time in seconds it was signed at, "
            f"in ASCII digits (e.g. {int(time.time())})"
        )
    moment = int(stamp)
    skew = abs((now if now is not None else time.time()) - moment)
    if skew > SIGNATURE_WINDOW_SECONDS:
        raise AuthError(
            f"X-Journey-Timestamp is {skew:.0f} s away from the server's clock (allowed: "
            f"{SIGNATURE_WINDOW_SECONDS} s): sign each request when sending it"
        )
    given = signature.strip()
    if not given.startswith("sha256="):
        raise AuthError(f"X-Journey-Signature must be 'sha256=<hex HMAC-SHA256 of {SIGNED}>'")
    given_bytes = given.encode("utf-8", "replace")  # header text may hold anything; compare bytes
    message = signed_text(stamp, method, target, body)
    if any(hmac.compare_digest(_signature(key, message), given_bytes) for key in keys):
        return Caller("signature", "webhook")
    here = f"here '{stamp}.{method.upper()}.{target}.' followed by the raw body"
    old_form = stamp.encode() + b"." + body  # what senders signed before method and target were
    if any(hmac.compare_digest(_signature(key, old_form), given_bytes) for key in keys):
        raise AuthError(
            "X-Journey-Signature signs '<timestamp>.<raw body>', the old form, which held for any method and "
            f"path: sign '{SIGNED}' instead, {here}"
        )
    raise AuthError(f"X-Journey-Signature does not match this request: sign '{SIGNED}', {here}")


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
