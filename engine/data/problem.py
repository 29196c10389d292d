"""A problem with one row or one file, shown as `FILE:LINE: column 'x': message` (the line when there is one)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    line: int | None  # in the file; None for an item of an HTTP batch or the file as a whole
    message: str
    column: str | None = None

    def render(self, source: str) -> str:
        where = source if self.line is None else f"{source}:{self.line}"
        column = f"column '{self.column}': " if self.column is not None else ""
        return f"{where}: {column}{self.message}"


class SourceError(Exception):
    """A file that cannot be read on (too large, a line without end): reading stops at this problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem
