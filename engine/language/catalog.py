"""Find journey files in folders and validate them together (journey ids are unique across a folder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.language.compiler import check_file
from engine.language.errors import Issue
from engine.language.event_types import EVENTS_FILE
from engine.language.limits import LIMITS_FILE
from engine.language.plan import Plan
from engine.language.workspace import BUYING_GROUPS_FILE, SERVICES_FILE, Workspace, display, load_workspace

NOT_JOURNEYS = frozenset(
    name.removesuffix(".yaml") + suffix
    for name in (BUYING_GROUPS_FILE, SERVICES_FILE, EVENTS_FILE, LIMITS_FILE)
    for suffix in (".yaml", ".yml")
)


@dataclass
class Catalog:
    plans: list[Plan] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    checked: list[Path] = field(default_factory=list)


def journey_files(folder: Path) -> list[Path]:
    files = [*folder.glob("*.yaml"), *folder.glob("*.yml")]
    return sorted(path for path in files if path.name not in NOT_JOURNEYS)


def validate(paths: list[Path]) -> Catalog:
    """Validate files and folders; raises FileNotFoundError for a path that does not exist."""
    catalog = Catalog()
    workspaces: dict[Path, Workspace] = {}
    owners: dict[str, Path] = {}
    for given in paths:
        if not given.exists():
            raise FileNotFoundError(given)
        files = journey_files(given) if given.is_dir() else [given]
        folder = given if given.is_dir() else given.parent
        if folder.resolve() not in workspaces:
            workspace = load_workspace(folder)
            workspaces[folder.resolve()] = workspace
            catalog.issues.extend(workspace.issues)
        workspace = workspaces[folder.resolve()]
        for path in files:
            if path.name in NOT_JOURNEYS:
                continue  # checked with the workspace above
            catalog.checked.append(path)
            plan, issues = check_file(path, workspace)
            catalog.issues.extend(issues)
            if plan is None:
                continue
            other = owners.setdefault(plan.journey, path)
            if other != path:
                message = f"journey id '{plan.journey}' is already used by {display(other)}"
                catalog.issues.append(Issue(display(path), 1, 1, message))
                continue
            catalog.plans.append(plan)
    catalog.issues = sorted(set(catalog.issues))
    return catalog
