"""The root of the `journey` command: its groups, and how the process leaves."""

from __future__ import annotations

import os
import sys

from engine.cli import (
    analytics,
    buying_groups,
    data,
    diff,
    imports,
    journeys,
    lifecycle,
    operators,
    privacy,
    run,
    service,
    simulate,
)
from engine.cli.common import group

app = group(
    "B2B account journeys on Temporal: validate, draw and run journey files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for commands in (journeys, data, imports, run, diff, lifecycle, buying_groups, operators, service, privacy, simulate):
    commands.register(app)
app.add_typer(analytics.app, name="analytics")


def main() -> None:
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if "engine.runtime.temporal" not in sys.modules or not sys.modules["engine.runtime.temporal"].connected:
            raise
        # The Temporal client's Rust threads can abort the interpreter's teardown (SIGABRT, sdk-python
        # issue #300): once everything is printed, a command that talked to Temporal leaves at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main()
