"""structlog set-up: readable key-value lines on a terminal, one JSON object per line otherwise."""

from __future__ import annotations

import logging
import os
import sys

import structlog


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
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
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
