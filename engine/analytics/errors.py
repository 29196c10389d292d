"""Errors of the analytics reports: each one is a mistake in what was asked, printed without a traceback."""

from __future__ import annotations


class AnalyticsError(Exception):
    """A report cannot be computed as asked; the message says what to change."""


class SelectorError(AnalyticsError):
    """An event selector is malformed: unknown event type, bad `where`, or a `where` SQL cannot express."""
