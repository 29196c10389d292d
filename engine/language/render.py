"""Draw a Plan as a Mermaid or Graphviz DOT graph: nodes labelled with type and key settings."""

from __future__ import annotations

import json
import re

from engine.language.durations import format_duration
from engine.language.model import (
    AddToJourney,
    AssignRole,
    ExternalAction,
    NodeBase,
    PeopleSplit,
    PersonEmail,
    RemoveFromBuyingGroup,
    RemoveFromJourney,
    SalesAlert,
    SendEmail,
    Split,
    UpdateAccount,
    UpdateBuyingGroup,
    UpdatePerson,
    VariantSplit,
    Wait,
    WaitForChange,
    WaitForCompleteness,
    WaitForEvent,
)
from engine.language.plan import Plan

MAX_LABEL = 48
SPLIT_TYPES = frozenset({"split", "variant_split"})  # drawn as diamonds
_FORM = re.compile(r"""event\.form\s*==\s*(['"])([^'"]*)\1""")


def node_summary(node: NodeBase) -> str:
    """One line that says what the node does, as a marketer would read it."""
    match node:
        case SendEmail(to=to, template=template):
            if to.all:
                who = "everyone"
            elif to.roles:
                who = ", ".join(to.roles)
            elif to.missing_roles:
                who = "people for missing roles"
            else:
                who = f"people where {to.where}"
            kind = " (transactional)" if node.transactional else ""
            return f"email {template.split('/')[-1].split('.')[0]!r} to {who}{kind}"
        case Wait(duration=duration, until=until):
            return f"wait {format_duration(duration)}" if duration is not None else f"wait until {until}"
        case WaitForEvent(event=event, where=where, timeout=timeout):
            if event == "form_fill" and where and (form := _FORM.fullmatch(where.strip())):
                return f"wait {format_duration(timeout)} for form {form.group(2)!r}"
            condition = f" where {where}" if where else ""
            return f"wait {format_duration(timeout)} for {event}{condition}"
        case Split(paths=paths):
            return f"split, {len(paths)} path{'s' if len(paths) > 1 else ''} + otherwise"
        case VariantSplit(variants=variants):
            shares = ", ".join(f"{'holdout ' if v.holdout else ''}{v.name} {v.percent}%" for v in variants)
            treated = sum(not v.holdout for v in variants)
            return f"{'holdout' if treated == 1 else 'A/B' if treated == 2 else 'A/B/n'} test: {shares}"
        case ExternalAction(service=service, on_response=answers, store=store):
            uses = [f"{len(answers)} response path{'s' if len(answers) > 1 else ''}"] if answers else []
            uses += [f"store {', '.join(store)}"] if store else []
            return f"call {service}" + (f" ({'; '.join(uses)})" if uses else "")
        case UpdateAccount(set=to_set, add=to_add):
            changes = [f"{key}={value}" for key, value in (to_set or {}).items()]
            changes += [f"{key}+={value}" for key, value in (to_add or {}).items()]
            return "set " + ", ".join(changes)
        case WaitForChange(change=change, timeout=timeout):
            return f"wait {format_duration(timeout)} for {change.describe()}"
        case WaitForCompleteness(threshold=threshold, timeout=timeout):
            return f"wait {format_duration(timeout)} for {threshold:g}% complete"
        case UpdateBuyingGroup(stage=stage, status=status):
            changes = [f"stage -> {stage}"] if stage is not None else []
            changes += [f"status {status!r}" if status else "clear status"] if status is not None else []
            return "buying group: " + ", ".join(changes)
        case RemoveFromBuyingGroup(who=who):
            chosen = "everyone" if who.all else ", ".join(who.roles) if who.roles else f"members where {who.where}"
            return f"remove {chosen} from the buying group"
        case SalesAlert(to=to, template=template):
            return f"alert {to or 'the account owner'} with {template.split('/')[-1].split('.')[0]!r}"
        case PeopleSplit():
            routes = [
                f"{name} → {', '.join(step_summary(step) for step in steps) or 'no steps'}"
                for name, steps in zip(node.path_names(), node.all_steps(), strict=True)
            ]
            return "per person: " + " · ".join(routes)
        case AddToJourney(journey=journey):
            return f"add to {journey!r}"
        case RemoveFromJourney(journey=journey, reason=reason):
            return f"remove from {journey!r} ({reason})"
        case _:
            return node.type


def step_summary(step: PersonEmail | AssignRole | UpdatePerson) -> str:
    """One line for a step of a people_split path."""
    match step:
        case PersonEmail(template=template):
            return f"email {template.split('/')[-1].split('.')[0]!r}"
        case AssignRole(role=role):
            return f"make {role}"
        case UpdatePerson(set=values):
            return "set " + ", ".join(f"{key}={value}" for key, value in values.items())


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _edge_label(label: str) -> str:
    return _short(label.removeprefix("when "))


def mermaid(plan: Plan) -> str:
    lines = ["flowchart TD", f"  %% {plan.journey} version {plan.version}"]
    for node_id, node in plan.nodes.items():
        text = f"{node_id}<br/><small>{_short(node_summary(node))}</small>"
        text = text.replace('"', "#quot;")
        shape = ("([", "])") if node.type == "end" else ("{", "}") if node.type in SPLIT_TYPES else ("[", "]")
        lines.append(f'  {_mermaid_id(node_id)}{shape[0]}"{text}"{shape[1]}')
    lines.append(f"  start((start)) --> {_mermaid_id(plan.start)}")
    for node_id, edges in plan.edges.items():
        for edge in edges:
            label = _edge_label(edge.label).replace('"', "#quot;").replace("|", "#124;")
            lines.append(f'  {_mermaid_id(node_id)} -->|"{label}"| {_mermaid_id(edge.target)}')
    return "\n".join(lines) + "\n"


def _mermaid_id(node_id: str) -> str:
    # Mermaid reserves some words ('end' among them) as ids; a prefix keeps every id safe.
    return "n_" + node_id.replace("-", "_")


def dot(plan: Plan) -> str:
    lines = [
        f"digraph {json.dumps(plan.journey)} {{",
        "  rankdir=TB;",
        '  node [shape=box, fontname="Helvetica"];',
        f"  label={json.dumps(f'{plan.name} ({plan.version})')};",
    ]
    for node_id, node in plan.nodes.items():
        shape = "ellipse" if node.type == "end" else "diamond" if node.type in SPLIT_TYPES else "box"
        label = f"{node_id}\\n{_short(node_summary(node))}"
        lines.append(f"  {json.dumps(node_id)} [label={_dot_string(label)}, shape={shape}];")
    for node_id, edges in plan.edges.items():
        for edge in edges:
            lines.append(
                f"  {json.dumps(node_id)} -> {json.dumps(edge.target)} [label={_dot_string(_edge_label(edge.label))}];"
            )
    return "\n".join([*lines, "}"]) + "\n"


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\\\\n", "\\n") + '"'
