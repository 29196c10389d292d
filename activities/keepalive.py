"""Heartbeats that let Temporal notice a dead worker in seconds instead of at the end of start-to-close.

Every journey activity is started with a short heartbeat timeout (engine/workflow/state.py HEARTBEAT);
`heartbeating` beats while the activity runs, from the event loop (the work itself runs in threads or awaits
I/O). The first beat comes only after KEEPALIVE_SECONDS, so the many activities that finish sooner send
none: on Temporal Cloud a heartbeat is a billed action.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from temporalio import activity

KEEPALIVE_SECONDS = 3.0  # well inside the 10 s heartbeat timeout, after the SDK's throttling

_P = ParamSpec("_P")
_T = TypeVar("_T")


def heartbeating(function: Callable[_P, Awaitable[_T]]) -> Callable[_P, Awaitable[_T]]:
    """Run the activity with a heartbeat every KEEPALIVE_SECONDS while it works."""

    @functools.wraps(function)
    async def beating(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        if activity.info().is_local:  # run inside a workflow task, which the worker keeps alive itself
            return await function(*args, **kwargs)
        beats = asyncio.create_task(_beat())
        try:
            return await function(*args, **kwargs)
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats

    return beating


async def _beat() -> None:
    while True:
        await asyncio.sleep(KEEPALIVE_SECONDS)
        activity.heartbeat()
