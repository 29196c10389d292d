"""The error hierarchy and how a validation problem is rendered for a marketer.

Every problem in a journey file is an `Issue`; the compiler collects all of them and raises one
`JourneyInvalidError`, so a marketer sees every mistake in one run instead of fixing them one by one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


class JourneyError(Exception):
    """Base of every error this project raises on purpose."""


class JourneyInvalidError(JourneyError):
    """A journey (or its buying-group or services file) has one or more problems; see `.issues`."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = sorted(issues)
        super().__init__("\n".join(issue.render() for issue in self.issues))


class ExpressionError(JourneyError):
    """An expression could not be parsed, names something unknown, or failed while evaluating."""


class ExpressionLimitError(ExpressionError):
    """An expression would build a value too large to compute in bounded time and memory (a huge power, a
    string repeated millions of times). Unlike odd data, this never gets better by retrying."""


@dataclass(frozen=True, order=True)
class Issue:
    """One problem, located in a source file; `node` is the journey node it belongs to, if any."""

    path: str
    line: int
    col: int
    message: str
    node: str | None = None

    def render(self) -> str:
        """One line: a newline inside a quoted value is shown as \\n, so tools reading line by line see one problem."""
        where = f"{self.path}:{self.line}:{self.col}"
        message = self.message.replace("\r", "\\r").replace("\n", "\\n")
        if self.node is not None:
            return f"{where}: node '{self.node}': {message}"
        return f"{where}: {message}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ` (did you mean 'x'?)` suffix when a close match exists, else the empty string."""
    matches = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
