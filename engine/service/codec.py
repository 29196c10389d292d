"""The codec endpoint: Temporal's UI and CLI send it payloads as stored (values by reference, encrypted) and
show what it answers, so operators read histories that strangers with the cluster's storage cannot.

`POST /codec/decode` and `/codec/encode` take and answer `{"payloads": [...]}` in protobuf's JSON form, the
protocol of Temporal's codec servers. Both need an API key, as events do: point the CLI at it with
`temporal workflow show -w <id> --codec-endpoint http://host:8000/codec --codec-auth "Bearer <key>"`. For the
web UI, whose requests carry no key of ours, serve it behind the proxy that authenticates your operators and
allow the UI's origin in JOURNEY_CODEC_CORS_ORIGINS.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from engine.service.ingest import ProblemError, read_json


def router(codec: PayloadCodec) -> APIRouter:
    routes = APIRouter(prefix="/codec", tags=["codec"])

    async def convert(request: Request, decode: bool) -> dict[str, Any]:
        body = read_json(await request.body())
        try:
            payloads = json_format.ParseDict(body, Payloads())
        except (json_format.ParseError, DecodeError, TypeError, ValueError) as error:
            raise ProblemError(
                422, "invalid_body", f"expected {{'payloads': [...]}} as protobuf JSON: {error}"
            ) from None
        try:
            converted = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
        except (LookupError, ValueError) as error:  # a value not in this database, a key this service lacks
            raise ProblemError(422, "cannot_decode", str(error)) from None
        return json_format.MessageToDict(Payloads(payloads=converted))

    @routes.post("/decode", summary="Payloads as stored in Temporal -> as the journey wrote them")
    async def decode(request: Request) -> dict[str, Any]:
        return await convert(request, decode=True)

    @routes.post("/encode", summary="Payloads as the journey writes them -> as stored in Temporal")
    async def encode(request: Request) -> dict[str, Any]:
        return await convert(request, decode=False)

    return routes
