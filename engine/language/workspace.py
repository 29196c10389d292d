"""The folder a journey lives in: its buying groups (role templates, solution interests) and services."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from engine.language import conditions, shape
from engine.language.errors import Issue, did_you_mean
from engine.language.event_types import EVENTS_FILE, EventTypes, read_event_types
from engine.language.journey_refs import journey_ids
from engine.language.limits import LIMITS_FILE, LimitsFile
from engine.language.loader import SourceMap, load_file
from engine.language.model import BuyingGroupsFile, RoleTemplate, ServicesFile, SolutionInterest

M = TypeVar("M", BuyingGroupsFile, ServicesFile, LimitsFile)

BUYING_GROUPS_FILE = "buying_groups.yaml"
SERVICES_FILE = "services.yaml"
# A rule decides a person's role, so it cannot read the role itself.
RULE_SCOPE = conditions.Scope(
    {"person": conditions.PERSON_FIELDS - {"role"}, "account": conditions.ACCOUNT_FIELDS}, "role rules"
)


@dataclass
class Workspace:
    folder: Path
    buying_groups: BuyingGroupsFile = field(default_factory=BuyingGroupsFile)
    services: ServicesFile = field(default_factory=ServicesFile)
    issues: list[Issue] = field(default_factory=list)
    has_buying_groups_file: bool = False
    # False when the file has problems: they are reported once, not again in every journey using it.
    buying_groups_loaded: bool = True
    services_loaded: bool = True
    has_services_file: bool = False
    event_types: EventTypes = field(default_factory=EventTypes)
    # None without a limits.yaml (or with an empty or broken one): no caps, no quiet hours.
    limits: LimitsFile | None = None

    @cached_property
    def solution_interests(self) -> dict[str, SolutionInterest]:
        return {interest.id: interest for interest in self.buying_groups.solution_interests}

    @cached_property
    def role_templates(self) -> dict[str, RoleTemplate]:
        return {template.id: template for template in self.buying_groups.role_templates}

    @cached_property
    def journeys(self) -> frozenset[str]:
        """Ids of the folder's journeys, read only when a node names another journey."""
        return journey_ids(self.folder)


def display(path: Path) -> str:
    """Paths in messages are relative to the current folder when they can be."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_workspace(folder: Path) -> Workspace:
    workspace = Workspace(folder)
    groups_path, services_path = _either(folder, BUYING_GROUPS_FILE), _either(folder, SERVICES_FILE)
    if groups_path.is_file():
        workspace.has_buying_groups_file = True
        groups, source = _load(groups_path, BuyingGroupsFile, workspace.issues)
        workspace.buying_groups_loaded = groups is not None
        if groups is not None:
            workspace.buying_groups = groups
            _check_buying_groups(groups, source, workspace.issues)
    if services_path.is_file():
        workspace.has_services_file = True
        services, _ = _load(services_path, ServicesFile, workspace.issues)
        workspace.services_loaded = services is not None
        if services is not None:
            workspace.services = services
    limits_path = _either(folder, LIMITS_FILE)
    if limits_path.is_file():
        limits, _ = _load(limits_path, LimitsFile, workspace.issues)
        workspace.limits = limits if limits is not None and not limits.is_empty() else None
    events_path = _either(folder, EVENTS_FILE)
    workspace.event_types, problems = read_event_types(events_path.parent, display(events_path))
    workspace.issues.extend(problems)
    return workspace


def _either(folder: Path, name: str) -> Path:
    """`name` as .yaml, or as .yml when only that exists."""
    path = folder / name
    short = path.with_suffix(".yml")
    return short if not path.exists() and short.exists() else path


def _load(path: Path, model: type[M], issues: list[Issue]) -> tuple[M | None, SourceMap]:
    document, problems = load_file(path, display(path))
    issues.extend(problems)
    if document is None or problems:
        return None, SourceMap(display(path))
    if document.data is None:
        return model(), document.source
    result, problems = shape.validate(model, document.data, document.source)
    issues.extend(problems)
    return result, document.source


def _check_buying_groups(groups: BuyingGroupsFile, source: SourceMap, issues: list[Issue]) -> None:
    shown = source.path
    templates = {template.id for template in groups.role_templates}
    seen_templates: set[str] = set()
    for t_index, template in enumerate(groups.role_templates):
        at = ("role_templates", t_index)
        if template.id in seen_templates:
            line, col = source.value((*at, "id"))
            issues.append(Issue(shown, line, col, f"duplicate role template id '{template.id}'"))
        seen_templates.add(template.id)
        seen_roles: set[str] = set()
        for r_index, role in enumerate(template.roles):
            role_at = (*at, "roles", r_index)
            if role.role in seen_roles:
                line, col = source.value((*role_at, "role"))
                issues.append(Issue(shown, line, col, f"role template '{template.id}': duplicate role '{role.role}'"))
            seen_roles.add(role.role)
            for problem in conditions.check(role.when, RULE_SCOPE):
                line, col = source.value((*role_at, "when"))
                issues.append(Issue(shown, line, col, f"role '{role.role}': when: {problem}"))
    seen_interests: set[str] = set()
    for index, interest in enumerate(groups.solution_interests):
        at = ("solution_interests", index)
        if interest.id in seen_interests:
            line, col = source.value((*at, "id"))
            issues.append(Issue(shown, line, col, f"duplicate solution interest id '{interest.id}'"))
        seen_interests.add(interest.id)
        if interest.role_template not in templates:
            line, col = source.value((*at, "role_template"))
            hint = did_you_mean(interest.role_template, templates)
            message = f"solution interest '{interest.id}': unknown role template '{interest.role_template}'{hint}"
            issues.append(Issue(shown, line, col, message))
