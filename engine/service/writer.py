"""Group commit: events of requests arriving together are stored in one transaction.

Each request still gets its answer only after its events are committed; what is shared is the commit (with
SQLite, one sync to disk), which is what bounds the rate of single-event requests otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from engine.language.event_types import EventTypes
from engine.service import ingest
from engine.service.schemas import MAX_BATCH, EventAnswer, EventIn, EventsAnswer


@dataclass
class _Pending:
    items: list[EventIn | EventAnswer]
    done: asyncio.Future[EventsAnswer] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Writer:
    """Stores what requests hand it, every waiting request's events in one `ingest.store` call."""

    def __init__(self, engine: Engine, types: EventTypes) -> None:
        self._engine, self._types = engine, types
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def store(self, items: list[EventIn | EventAnswer]) -> EventsAnswer:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        pending = _Pending(items)
        self._queue.put_nowait(pending)
        return await pending.done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            size = len(group[0].items)
            while not self._queue.empty() and size < MAX_BATCH:
                group.append(self._queue.get_nowait())
                size += len(group[-1].items)
            try:
                answer = await asyncio.to_thread(self._store, [item for pending in group for item in pending.items])
            except Exception as error:
                if len(group) == 1:  # the request answers with the failure (500); nothing of it was stored
                    group[0].done.set_exception(error)
                    continue
                # One request's value broke the shared commit: each is stored on its own again, so only the
                # request that holds it fails and no other is refused for it.
                for pending in group:
                    await self._store_alone(pending)
                continue
            start = 0
            for pending in group:
                own = answer.results[start : start + len(pending.items)]
                start += len(pending.items)
                pending.done.set_result(_renumbered(own, pending.items))

    async def _store_alone(self, pending: _Pending) -> None:
        try:
            answer = await asyncio.to_thread(self._store, pending.items)
        except Exception as error:
            pending.done.set_exception(error)
        else:
            pending.done.set_result(_renumbered(answer.results, pending.items))

    def _store(self, items: list[EventIn | EventAnswer]) -> EventsAnswer:
        renumbered = [
            item.model_copy(update={"index": position}) if isinstance(item, EventAnswer) else item
            for position, item in enumerate(items)
        ]
        return ingest.store(self._engine, renumbered, self._types)


def _renumbered(answers: list[EventAnswer], items: list[EventIn | EventAnswer]) -> EventsAnswer:
    """One request's share of a group's answer, with its own event positions again."""
    own = []
    for position, (answer, item) in enumerate(zip(answers, items, strict=True)):
        index = item.index if isinstance(item, EventAnswer) else position
        own.append(answer.model_copy(update={"index": index}))
    counts = {status: sum(1 for a in own if a.status == status) for status in ("accepted", "duplicate", "unmatched")}
    return EventsAnswer(**counts, rejected=sum(1 for a in own if a.status == "rejected"), results=own)
