"""What sales receives at the handoff: one summary, as data (stored and posted to the CRM) and as an email."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from activities.email import html_to_text
from engine.buying_groups import scoring
from engine.db import Account, ActivityEvent
from engine.language.model import RoleTemplate
from engine.workflow.contracts import BuyingGroupSnapshot


def build(
    key: str,
    journey_id: str,
    snapshot: BuyingGroupSnapshot,
    template: RoleTemplate,
    account: Account,
    recent: Sequence[ActivityEvent],
    stage: str,
) -> dict[str, Any]:
    """Plain JSON data: members by role (template order, empty roles included), scores, recent activity."""
    by_role: dict[str, list[dict[str, Any]]] = {role.role: [] for role in template.roles}
    for member in snapshot.members:
        by_role.setdefault(member.role, []).append(
            {
                "person_id": member.person_id,
                "name": member.name,
                "email": member.email,
                "job_title": member.job_title,
                "assigned_by": member.assigned_by,
                "engagement": scoring.display(member.engagement_score),
            }
        )
    return {
        "key": key,
        "journey_id": journey_id,
        "buying_group_id": snapshot.id,
        "account": {"id": account.id, "name": account.name, "domain": account.domain},
        "solution_interest": snapshot.solution_interest,
        "stage": stage,
        "completeness": scoring.display(snapshot.completeness),
        "engagement": scoring.display(snapshot.engagement),
        "members_by_role": by_role,
        "missing_roles": list(snapshot.missing_roles),
        "recent_activity": [
            {
                "type": event.type,
                "person_id": event.person_id,
                "email": event.email,
                "occurred_at": _aware(event.occurred_at).isoformat(),
            }
            for event in recent
        ],
    }


def webhook_body(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without the journey's internal request key (the header carries the handoff's own key)."""
    return {name: value for name, value in summary.items() if name != "key"}


def render(summary: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, html, text) of the account owner's email."""
    account = summary["account"]
    subject = f"Sales handoff: {account['name']} ({summary['solution_interest']})"
    rows = []
    for role, members in summary["members_by_role"].items():
        people = ", ".join(_person(member) for member in members) or "<em>nobody yet</em>"
        rows.append(f"<li><strong>{escape(role)}</strong>: {people}</li>")
    missing = ", ".join(escape(role) for role in summary["missing_roles"]) or "none"
    activity = [
        f"<li>{escape(item['occurred_at'])} {escape(item['type'])} {escape(item['email'] or '')}</li>"
        for item in summary["recent_activity"]
    ]
    html = (
        f"<h1>{escape(account['name'])} is ready for sales</h1>"
        f"<p>Buying group {summary['buying_group_id']} for '{escape(summary['solution_interest'])}' "
        f"moved to stage '{escape(summary['stage'])}'.</p>"
        f"<p>Completeness: {summary['completeness']}%<br>Engagement: {summary['engagement']}</p>"
        f"<h2>Members by role</h2><ul>{''.join(rows)}</ul>"
        f"<h2>Missing roles</h2><p>{missing}</p>"
        f"<h2>Recent activity</h2><ul>{''.join(activity) or '<li>none</li>'}</ul>"
    )
    return subject, html, html_to_text(html)


def _person(member: dict[str, Any]) -> str:
    title = f", {member['job_title']}" if member["job_title"] else ""
    email = f" &lt;{escape(member['email'])}&gt;" if member["email"] else ""
    return f"{escape(member['name'] + title)}{email} (engagement {member['engagement']})"


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; the engine stores UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
