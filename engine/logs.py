"""structlog set-up: readable key-value lines on a terminal, one JSON object per line otherwise."""

from __future__ import annotations

import logging
import os
import sys

import structlog

# A cached logger keeps the set-up of its first use for good; the test suite, which runs commands in-process and
# captures logs, turns caching off (tests/conftest.py). Uncached, each call looks its module up again.
CACHE_LOGGERS = True


def configure(level: str | None = None, json: bool | None = None) -> None:
    """JOURNEY_LOG_LEVEL (default INFO) and JOURNEY_LOG_FORMAT (json | console; default by terminal)."""
    level_name = (level or os.environ.get("JOURNEY_LOG_LEVEL", "INFO")).upper()
    if json is None:
        wanted = os.environ.get("JOURNEY_LOG_FORMAT")
        json = wanted == "json" if wanted else not sys.stderr.isatty()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        # Lines under the level are dropped first, before any processor stamps or formats them: a busy worker
        # makes thousands of info calls a minute that WARNING leaves unwritten.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=CACHE_LOGGERS,
    )
    # The Temporal SDK and our workflow/activity loggers use the standard library: same format for them.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer, foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()]
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level_name)
