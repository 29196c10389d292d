"""Assembling and running the events service: from the environment for `journey serve` and `journey dev`,
and in-process on a loopback port for tests and the bench."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from engine.db import init_db, make_engine
from engine.language.errors import JourneyInvalidError
from engine.language.event_types import load_event_types
from engine.runtime import temporal
from engine.service.app import ServiceConfig, create_app
from engine.service.relay import Relay, TemporalLink
from engine.tracking import Tokens


def build_app(journeys: Path, relay: bool = True, engine: Engine | None = None) -> tuple[FastAPI, Engine]:
    """The app as configured by the environment (database, Temporal, tracking secret, custom event types).
    ValueError says what is wrong with the configuration."""
    try:
        types = load_event_types(journeys)
    except JourneyInvalidError as error:
        raise ValueError(f"custom event types:\n{error}") from None
    tokens = Tokens.from_env()
    engine = engine or make_engine()
    init_db(engine)
    config = ServiceConfig(engine, types, tokens, TemporalLink(temporal.connect), relay=relay)
    return create_app(config), engine


async def run_relay(journeys: Path, poll: float, stop: asyncio.Event) -> None:
    """The relay alone, for `journey serve --no-relay` processes: it looks for new events every `poll` s."""
    try:
        types = load_event_types(journeys)
    except JourneyInvalidError as error:
        raise ValueError(f"custom event types:\n{error}") from None
    engine = make_engine()
    init_db(engine)
    try:
        await Relay(engine, TemporalLink(temporal.connect), types.names, idle=poll).run(stop)
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> AsyncIterator[str]:
    """uvicorn serving `app` in this event loop; yields the base URL, stops (relay included) on exit."""
    port = port or free_port()
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise RuntimeError(
                f"the events service cannot listen on {host}:{port} ({error.strerror}): choose another port"
            ) from None
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start
                raise RuntimeError(f"the events service did not start on {host}:{port}")
            await asyncio.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
