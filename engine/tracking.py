"""Signed tracking and unsubscribe tokens: what an email's pixel, links and unsubscribe link carry.

A token is `<base64url JSON>.<base64url HMAC-SHA256>` under JOURNEY_TRACKING_SECRET, the kind ('o' open,
'c' click, 'u' unsubscribe) signed with it, so a token made for an open cannot be replayed as a click and
a click redirects only to the URL that was signed. Anything forged, altered or cut short is refused.
The secret must hold at least MIN_SECRET_BYTES: a short one can be guessed offline from a single token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

PUBLIC_URL_ENV = "JOURNEY_PUBLIC_URL"
SECRET_ENV = "JOURNEY_TRACKING_SECRET"
Kind = Literal["o", "c", "u"]
PATHS: dict[Kind, str] = {"o": "/t/o/", "c": "/t/c/", "u": "/u/"}
# HMAC-SHA256 keys: 32 bytes is the hash's own strength; anything shorter is the weakest link.
MIN_SECRET_BYTES = 32
MAKE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def check_secret(variable: str, secret: bytes) -> None:
    """ValueError, saying how to make a good one, when `secret` is too short to sign with."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{variable} is too short to sign with ({len(secret)} bytes, at least {MIN_SECRET_BYTES} needed): "
            f"make one with `{MAKE_SECRET}`"
        )


class TokenError(Exception):
    """A token that was not made by this server with this secret for this use."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Tokens:
    """Makes and checks tokens with one secret; builds public URLs when the public base URL is known."""

    secret: bytes
    public_url: str | None = None

    def __post_init__(self) -> None:
        check_secret(SECRET_ENV, self.secret)

    @classmethod
    def from_env(cls) -> Tokens | None:
        """None when JOURNEY_PUBLIC_URL is not set (emails then carry no tracking); an error when it is set
        without the secret, because unsigned tracking links would let anyone record clicks."""
        public_url = os.environ.get(PUBLIC_URL_ENV, "").strip().rstrip("/")
        secret = os.environ.get(SECRET_ENV, "").strip()
        if not public_url:
            return cls(secret.encode()) if secret else None
        if not secret:
            raise ValueError(
                f"{PUBLIC_URL_ENV} is set but {SECRET_ENV} is not: set a random secret of at least "
                f"{MIN_SECRET_BYTES} bytes, e.g. from `{MAKE_SECRET}`"
            )
        return cls(secret.encode(), public_url)

    def _mac(self, kind: Kind, body: str) -> str:
        return _b64(hmac.new(self.secret, f"{kind}.{body}".encode(), hashlib.sha256).digest())

    def make(self, kind: Kind, data: dict[str, Any]) -> str:
        body = _b64(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(kind, body)}"

    def read(self, kind: Kind, token: str) -> dict[str, Any]:
        body, dot, mac = token.partition(".")
        if not token.isascii() or not dot or not body or not mac:
            raise TokenError("malformed token")
        if not hmac.compare_digest(self._mac(kind, body), mac):
            raise TokenError("token signature does not match: it was altered, forged or made for another use")
        try:
            data = json.loads(_unb64(body))
        except (binascii.Error, ValueError) as error:
            raise TokenError(f"token body is not readable: {error}") from None
        if not isinstance(data, dict):
            raise TokenError("token body is not an object")
        return data

    def url(self, kind: Kind, data: dict[str, Any]) -> str:
        if self.public_url is None:
            raise ValueError(f"set {PUBLIC_URL_ENV} to build public tracking links")
        return f"{self.public_url}{PATHS[kind]}{quote(self.make(kind, data), safe='')}"
