"""Optional client-side encryption of Temporal payloads: histories hold people's emails and account data, and
whoever can read the Temporal cluster (or Temporal Cloud's storage) should not read those.

JOURNEY_PAYLOAD_KEY is `<key id>:<key>`, the key 32 bytes in URL-safe base64 (make one with
`python -c "import os, base64; print('k1:' + base64.urlsafe_b64encode(os.urandom(32)).decode())"`). Each
payload is sealed with AES-256-GCM under a fresh 96-bit nonce, the key id in its metadata; keys listed in
JOURNEY_PAYLOAD_OLD_KEYS (comma-separated, same form) still open payloads written before a rotation. Payloads
without the mark pass unchanged, so a cluster with plain histories can turn encryption on at any time.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

KEY_ENV, OLD_KEYS_ENV = "JOURNEY_PAYLOAD_KEY", "JOURNEY_PAYLOAD_OLD_KEYS"
ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    """A payload key is malformed, or a payload was sealed with a key this process does not have."""


def _parse(text: str, env: str) -> tuple[str, bytes]:
    key_id, colon, encoded = text.strip().partition(":")
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if not colon or not key_id or len(key) != 32:
        raise PayloadKeyError(
            f"{env} must be '<key id>:<32 bytes in URL-safe base64>', e.g. made with "
            "`python -c \"import os, base64; print('k1:' + base64.urlsafe_b64encode(os.urandom(32)).decode())\"`"
        )
    return key_id, key


def codec_from_env() -> EncryptionCodec | None:
    """The codec JOURNEY_PAYLOAD_KEY asks for, or None when payloads stay plain."""
    current = os.environ.get(KEY_ENV, "").strip()
    if not current:
        return None
    old = [item for item in os.environ.get(OLD_KEYS_ENV, "").split(",") if item.strip()]
    return EncryptionCodec(_parse(current, KEY_ENV), [_parse(item, OLD_KEYS_ENV) for item in old])


class EncryptionCodec(PayloadCodec):
    def __init__(self, current: tuple[str, bytes], old: Sequence[tuple[str, bytes]] = ()) -> None:
        self._key_id = current[0]
        self._sealing = AESGCM(current[1])
        self._opening = {key_id: AESGCM(key) for key_id, key in [*old, current]}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        sealed = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            data = nonce + self._sealing.encrypt(nonce, payload.SerializeToString(), self._key_id.encode())
            sealed.append(Payload(metadata={"encoding": ENCODING, KEY_ID: self._key_id.encode()}, data=data))
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        opened = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                opened.append(payload)
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._opening.get(key_id)
            if cipher is None:
                raise PayloadKeyError(
                    f"a payload is sealed with key '{key_id}', which this process does not have: add it to "
                    f"{OLD_KEYS_ENV}"
                )
            nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
            try:
                opened.append(Payload.FromString(cipher.decrypt(nonce, sealed, key_id.encode())))
            except InvalidTag:
                raise PayloadKeyError(f"a payload sealed with key '{key_id}' was altered or the key is wrong") from None
        return opened


class CodecChain(PayloadCodec):
    """Codecs applied in order when encoding (claim-check, then encryption) and in reverse when decoding."""

    def __init__(self, codecs: Sequence[PayloadCodec]) -> None:
        self._codecs = list(codecs)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        result = list(payloads)
        for codec in self._codecs:
            result = await codec.encode(result)
        return result

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        result = list(payloads)
        for codec in reversed(self._codecs):
            result = await codec.decode(result)
        return result
