"""What changed between the live version of a journey and a new compile of its file: nodes added, removed and
changed (field by field, with the email templates' text compared line by line), branches re-pointed, added or
removed, and the journey's own settings (audience, send window, limits, ...). Pure: two Plans in, a PlanDiff out;
`journey diff` and `journey publish` print it, and diff_impact.py counts the accounts it touches."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.language.compiler import EDGE_KEYS
from engine.language.plan import Plan

TEMPLATE_DIFF_LINES = 40  # unified-diff lines kept per template; the counts of lines added/removed stay exact
VALUE_CHARS = 200  # a changed value longer than this is shortened in the summary
# Every Plan field that is not a node, an edge, a template or the version's bookkeeping: the journey's settings.
_NOT_SETTINGS = frozenset({"nodes", "edges", "templates", "version", "source"})
_BRANCH_LISTS = ("paths", "on_response", "variants")  # lists whose items' `next` is a branch


@dataclass(frozen=True)
class FieldChange:
    """One value that differs; `old`/`new` are JSON values, None when the field is absent on that side."""

    field: str  # dotted: duration, to.roles, paths[0].when, audience.reentry
    old: Any
    new: Any


@dataclass(frozen=True)
class TemplateChange:
    """An email template whose text differs (the node may point at another file, or the file was edited)."""

    old_path: str | None
    new_path: str | None
    lines_added: int
    lines_removed: int
    diff: list[str]  # unified diff, at most TEMPLATE_DIFF_LINES lines
    truncated: bool


@dataclass(frozen=True)
class EdgeChange:
    """A branch of a node present in both versions: `old_target` None when added, `new_target` None when removed."""

    node: str
    label: str  # next, on_timeout, when <expression>, otherwise, variant A (50%), ...
    old_target: str | None
    new_target: str | None

    @property
    def kind(self) -> str:
        if self.old_target is None:
            return "added"
        return "removed" if self.new_target is None else "re-pointed"


@dataclass(frozen=True)
class NodeChange:
    node: str
    type: str
    fields: list[FieldChange] = field(default_factory=list)
    templates: list[TemplateChange] = field(default_factory=list)
    edges: list[EdgeChange] = field(default_factory=list)


@dataclass(frozen=True)
class NodeSummary:
    """An added or removed node."""

    node: str
    type: str


@dataclass(frozen=True)
class PlanDiff:
    journey: str
    old_version: str | None  # None: no live version, the whole journey is new
    new_version: str
    added: list[NodeSummary] = field(default_factory=list)
    removed: list[NodeSummary] = field(default_factory=list)
    changed: list[NodeChange] = field(default_factory=list)
    settings: list[FieldChange] = field(default_factory=list)

    @property
    def is_new(self) -> bool:
        return self.old_version is None

    @property
    def unchanged(self) -> bool:
        return not self.is_new and not (self.added or self.removed or self.changed or self.settings)

    @property
    def edges(self) -> list[EdgeChange]:
        return [edge for node in self.changed for edge in node.edges]

    def affected_nodes(self) -> list[str]:
        """The live version's nodes whose accounts the new version treats differently: removed or changed."""
        return [node.node for node in self.removed] + [node.node for node in self.changed]

    def as_json(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "new_journey": self.is_new,
            "unchanged": self.unchanged,
            "added": [asdict(node) for node in self.added],
            "removed": [asdict(node) for node in self.removed],
            "changed": [
                {
                    "node": node.node,
                    "type": node.type,
                    "fields": [asdict(change) for change in node.fields],
                    "templates": [asdict(change) for change in node.templates],
                    "edges": [_edge_json(edge) for edge in node.edges],
                }
                for node in self.changed
            ],
            "edges": [_edge_json(edge) for edge in self.edges],
            "settings": [asdict(change) for change in self.settings],
        }


def _edge_json(edge: EdgeChange) -> dict[str, Any]:
    return {"kind": edge.kind, **asdict(edge)}


def diff(old: Plan | None, new: Plan) -> PlanDiff:
    """The changes from `old` (the live version; None when there is none) to `new`."""
    if old is None:
        added = [NodeSummary(node_id, node.type) for node_id, node in new.nodes.items()]
        return PlanDiff(new.journey, None, new.version, added=added)
    added = [NodeSummary(node_id, node.type) for node_id, node in new.nodes.items() if node_id not in old.nodes]
    removed = [NodeSummary(node_id, node.type) for node_id, node in old.nodes.items() if node_id not in new.nodes]
    changed = []
    for node_id in new.nodes:
        if node_id in old.nodes:
            change = _node_change(old, new, node_id)
            if change.fields or change.templates or change.edges:
                changed.append(change)
    return PlanDiff(new.journey, old.version, new.version, added, removed, changed, _settings(old, new))


def _settings(old: Plan, new: Plan) -> list[FieldChange]:
    before = {key: value for key, value in old.model_dump(mode="json").items() if key not in _NOT_SETTINGS}
    after = {key: value for key, value in new.model_dump(mode="json").items() if key not in _NOT_SETTINGS}
    return _changes(_leaves(before), _leaves(after))


def _node_change(old: Plan, new: Plan, node_id: str) -> NodeChange:
    before, after = old.nodes[node_id].model_dump(mode="json"), new.nodes[node_id].model_dump(mode="json")
    fields = [
        change
        for change in _changes(_leaves(before), _leaves(after))
        if not _is_branch(change.field) and change.field != "id"
    ]
    return NodeChange(
        node_id,
        new.nodes[node_id].type,
        fields,
        _template_changes(_templates_of(before, old), _templates_of(after, new), old, new),
        _edge_changes(old, new, node_id),
    )


def _is_branch(dotted: str) -> bool:
    """A field naming the next node: compared as an edge, not as a field."""
    if dotted in EDGE_KEYS or dotted == "otherwise":
        return True
    head, _, rest = dotted.partition("[")
    return head in _BRANCH_LISTS and rest.endswith("].next") and rest.count(".") == 1


def _edge_changes(old: Plan, new: Plan, node_id: str) -> list[EdgeChange]:
    # A label can repeat (two split paths with the same condition): matched by label and position among equals.
    before = _labelled(old.edges.get(node_id, []))
    after = _labelled(new.edges.get(node_id, []))
    changes = []
    for key, target in after.items():
        if before.get(key) != target:
            changes.append(EdgeChange(node_id, key[0], before.get(key), target))
    changes.extend(EdgeChange(node_id, key[0], target, None) for key, target in before.items() if key not in after)
    return changes


def _labelled(edges: list[Any]) -> dict[tuple[str, int], str]:
    seen: dict[str, int] = {}
    labelled = {}
    for edge in edges:
        position = seen.get(edge.label, 0)
        seen[edge.label] = position + 1
        labelled[(edge.label, position)] = edge.target
    return labelled


def _templates_of(node: dict[str, Any], plan: Plan) -> list[str]:
    """The template files a node uses, in the order it names them, each followed by its plain-text twin."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str) and value in plan.templates and value not in found:
            found.append(value)
            twin = value.removesuffix(".j2").removesuffix(".html").removesuffix(".htm") + ".txt.j2"
            if twin in plan.templates and twin not in found:
                found.append(twin)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(node)
    return found


def _template_changes(before: list[str], after: list[str], old: Plan, new: Plan) -> list[TemplateChange]:
    changes = []
    for index in range(max(len(before), len(after))):
        old_path = before[index] if index < len(before) else None
        new_path = after[index] if index < len(after) else None
        old_text = old.templates[old_path] if old_path else ""
        new_text = new.templates[new_path] if new_path else ""
        if old_text != new_text:
            changes.append(template_change(old_path, new_path, old_text, new_text))
    return changes


def template_change(old_path: str | None, new_path: str | None, old_text: str, new_text: str) -> TemplateChange:
    lines = list(
        difflib.unified_diff(
            old_text.splitlines(),
            new_text.splitlines(),
            fromfile=old_path or "(none)",
            tofile=new_path or "(none)",
            n=1,
            lineterm="",
        )
    )
    body = [line for line in lines if not line.startswith(("---", "+++"))]
    added = sum(1 for line in body if line.startswith("+"))
    removed = sum(1 for line in body if line.startswith("-"))
    shown = [line[: VALUE_CHARS + 1] for line in lines[:TEMPLATE_DIFF_LINES]]
    return TemplateChange(old_path, new_path, added, removed, shown, len(lines) > TEMPLATE_DIFF_LINES)


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every scalar of a JSON value by its dotted path; an empty list or dict is a leaf of its own."""
    if isinstance(value, dict) and value:
        found: dict[str, Any] = {}
        for key, item in value.items():
            found.update(_leaves(item, f"{prefix}.{key}" if prefix else str(key)))
        return found
    if isinstance(value, list) and value:
        found = {}
        for index, item in enumerate(value):
            found.update(_leaves(item, f"{prefix}[{index}]"))
        return found
    return {prefix: value}


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    changes = [FieldChange(path, before.get(path), value) for path, value in after.items() if before.get(path) != value]
    changes.extend(FieldChange(path, value, None) for path, value in before.items() if path not in after)
    return [change for change in changes if change.old != change.new]
