"""Checks of the buying-group change nodes and sales_alert that need the workspace: the stage model, the role
template, and what a sales alert's templates may read. The compiler places each message at its node."""

from __future__ import annotations

from jinja2 import meta, nodes
from jinja2.exceptions import TemplateSyntaxError

from engine.language import templates
from engine.language.errors import did_you_mean
from engine.language.loader import PathKey
from engine.language.model import Members, RoleTemplate, Stages, UpdateBuyingGroup

# A sales alert goes to sales, not to a person of the account: nobody to greet, nothing to unsubscribe from.
NOT_IN_ALERTS = {
    "person": "'person' is not available in a sales alert: it goes to sales, not to a person of the account",
    "unsubscribe_url": "'unsubscribe_url' is not available in a sales alert: it goes to sales, not to a person",
}


def update_problems(node: UpdateBuyingGroup, stages: Stages) -> list[tuple[PathKey, str]]:
    """An unknown stage, a stage no stage may ever move to, and an on_not_allowed that can never be taken."""
    problems: list[tuple[PathKey, str]] = []
    if node.stage is None:
        if node.on_not_allowed is not None:
            message = "on_not_allowed: only a stage move can be refused; give 'stage' or drop on_not_allowed"
            problems.append((("on_not_allowed",), message))
        return problems
    names = stages.all
    if node.stage not in names:
        hint = did_you_mean(node.stage, names)
        problems.append((("stage",), f"stage: unknown stage '{node.stage}'{hint} (stages: {', '.join(names)})"))
        return problems
    reachable = {target for targets in stages.allowed().values() for target in targets}
    if node.stage not in reachable:
        sources = ", ".join(stages.allowed()) or "none"
        problems.append(
            (
                ("stage",),
                f"stage: the stage model lets no stage move to '{node.stage}' (transitions from: {sources}):"
                " this move would always be refused",
            )
        )
    return problems


def member_problems(who: Members, template: RoleTemplate | None) -> list[tuple[PathKey, str]]:
    """Roles the journey's role template does not have."""
    if not who.roles or template is None:
        return []
    roles = [role.role for role in template.roles]
    return [
        (
            ("who", "roles", index),
            f"who.roles: role template '{template.id}' has no role '{role}'{did_you_mean(role, roles)}",
        )
        for index, role in enumerate(who.roles)
        if role not in roles
    ]


def alert_problems(source: str, html: bool) -> list[tuple[int, str]]:
    """Variables of email templates that a sales alert does not have, as (line, message)."""
    try:
        tree = templates.environment(html).parse(source)
    except TemplateSyntaxError:
        return []  # templates.check reports it
    first_use: dict[str, int] = {}
    for name_node in tree.find_all(nodes.Name):
        if name_node.ctx == "load":
            first_use.setdefault(name_node.name, name_node.lineno)
    return [
        (first_use.get(name, 1), message)
        for name, message in NOT_IN_ALERTS.items()
        if name in meta.find_undeclared_variables(tree)
    ]
