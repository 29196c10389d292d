"""When an email (a send_email node, a people_split path's email) may go: inside the journey's send window and
outside limits.yaml's quiet hours, both in the account's time zone. Pure functions of the Plan, the account and
`workflow.now()`, so replay agrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow

from engine.language import schedule
from engine.language.limits import LimitsFile, quiet_until
from engine.language.model import SendEmail
from engine.workflow import visibility
from engine.workflow.operator_updates import OperatorUpdates

# A send window that opens only inside the quiet hours would hold an email forever: after this many holds the
# window alone decides (the journey's author asked for it explicitly).
MOST_QUIET_HOLDS = 3


@dataclass(frozen=True)
class Hold:
    """Wait until `until`; `waiting` is what the UI shows meanwhile, `what` names the timer."""

    until: datetime
    waiting: str
    what: str


class SendingTime(OperatorUpdates):
    def _send_hold(self, transactional: bool, holds: int) -> Hold | None:
        """What an email waits for before it goes now, after `holds` earlier holds; None when it may go. A
        transactional email (send_email's `transactional: true`) waits for the send window only."""
        plan, settings, now = self._plan(), self._settings(), workflow.now()
        tz = self._current().account.get("timezone")
        if plan.send_window and not settings.send_window_ignored:
            opens_in = schedule.window_opens_in(plan.send_window, now, tz)
            if opens_in > timedelta(0):
                return Hold(now + opens_in, visibility.SEND_WINDOW, f"send window {plan.send_window}")
        limits: LimitsFile | None = plan.limits
        if limits is None or limits.quiet_hours is None or transactional or holds >= MOST_QUIET_HOLDS:
            return None
        ends = quiet_until(limits.quiet_hours, now, tz)
        return Hold(ends, visibility.QUIET_HOURS, f"quiet hours {limits.quiet_hours}") if ends is not None else None

    def _send_limits(self, node: SendEmail) -> LimitsFile | None:
        """The caps the email activity counts against: none for a transactional node."""
        limits: LimitsFile | None = self._plan().limits
        return None if node.transactional else limits
