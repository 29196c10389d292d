"""Journey file -> Plan. Resolves every reference, checks the graph and collects ALL problems at once.

A marketer fixing a journey should see every mistake in one run, each as
`path:line:col: node 'id': message`, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from engine.collector import cycle_collector_paused
from engine.language import (
    change_checks,
    conditions,
    graph,
    group_checks,
    journey_refs,
    people_checks,
    responses,
    shape,
    templates,
    variants,
)
from engine.language.errors import Issue, JourneyInvalidError, did_you_mean
from engine.language.loader import Document, PathKey, load_file
from engine.language.model import (
    BUYING_GROUP_TYPES,
    NODE_MODELS,
    PERSON_STEP_TYPES,
    WAITING_TYPES,
    AddToJourney,
    ExternalAction,
    JourneyHeader,
    NodeBase,
    PeopleSplit,
    PersonEmail,
    Recipients,
    RemoveFromBuyingGroup,
    RemoveFromJourney,
    SalesAlert,
    SendEmail,
    Split,
    UpdateAccount,
    UpdateBuyingGroup,
    VariantSplit,
    WaitForChange,
    WaitForEvent,
)
from engine.language.plan import Edge, Plan
from engine.language.workspace import Workspace, display, load_workspace

EDGE_KEYS = ("next", "on_event", "on_change", "on_complete", "on_success", "on_error", "on_timeout", "on_not_allowed")
READ_ONLY_ACCOUNT_FIELDS = frozenset({"id", "created_at", "attributes", "domain"})
NUMERIC_ACCOUNT_FIELDS = frozenset({"employees", "annual_revenue"})


def compile_file(path: Path, workspace: Workspace | None = None) -> Plan:
    """The Plan of one journey file; raises JourneyInvalidError listing every problem."""
    plan, issues = check_file(path, workspace)
    if issues or plan is None:
        raise JourneyInvalidError(issues)
    return plan


def check_file(path: Path, workspace: Workspace | None = None) -> tuple[Plan | None, list[Issue]]:
    """The Plan (when the journey is sound) and the journey's own problems, in file order."""
    workspace = workspace or load_workspace(path.parent)
    with cycle_collector_paused():
        document, issues = load_file(path, display(path))
        if document is None:
            return None, issues
        compiler = _Compiler(document, path, workspace)
        compiler.issues.extend(issues)
        plan = compiler.run()
    return (plan if not compiler.issues else None), sorted(set(compiler.issues))


def _event_notes(event: str, known: dict[str, frozenset[str]]) -> dict[str, str]:
    """'form' belongs to form_fill events, not email_click: said where a field of another type is used."""
    notes: dict[str, str] = {}
    for other, fields in known.items():
        for name in fields - known[event]:
            notes.setdefault(f"event.{name}", f"'{name}' belongs to {other} events, not {event}")
    return notes


def raw_edges(raw: dict[str, Any]) -> Iterator[tuple[str, str, PathKey]]:
    """(label, target, where) for every branch a node names, also for nodes that failed validation."""
    for key in EDGE_KEYS:
        if isinstance(raw.get(key), str):
            yield key, raw[key], (key,)
    paths = raw.get("paths")
    for index, path in enumerate(paths if isinstance(paths, list) else []):
        if isinstance(path, dict) and isinstance(path.get("next"), str):
            yield f"when {path.get('when')}", path["next"], ("paths", index, "next")
    if isinstance(raw.get("otherwise"), str):
        yield "otherwise", raw["otherwise"], ("otherwise",)
    answers = raw.get("on_response")
    for index, path in enumerate(answers if isinstance(answers, list) else []):
        if isinstance(path, dict) and isinstance(path.get("next"), str):
            yield f"when {path.get('when')}", path["next"], ("on_response", index, "next")
    arms = raw.get("variants")
    for index, arm in enumerate(arms if isinstance(arms, list) else []):
        if isinstance(arm, dict) and isinstance(arm.get("next"), str):
            label = variants.branch_label(str(arm.get("name")), arm.get("percent"), arm.get("holdout") is True)
            yield label, arm["next"], ("variants", index, "next")


class _Located(NamedTuple):
    """A template path checked: the files to read (the template, and its text twin when there is one), and the
    problem with it, if any, as (whether the message starts with the field's name, message)."""

    reads: list[tuple[Path, str]]
    problem: tuple[bool, str] | None


class _Compiler:
    def __init__(self, document: Document, path: Path, workspace: Workspace) -> None:
        self.document, self.source, self.path, self.workspace = document, document.source, path, workspace
        self.issues: list[Issue] = []
        self.raw_nodes: dict[str, tuple[int, dict[str, Any]]] = {}  # id -> (index, raw), valid or not
        self.nodes: dict[str, NodeBase] = {}
        self.templates: dict[str, str] = {}
        self.located: dict[str, _Located] = {}  # template path as written -> what to read, or what is wrong
        self.event_notes: dict[str, dict[str, str]] = {}

    def fail(self, at: PathKey, message: str, node: str | None = None, key: bool = False) -> None:
        line, col = self.source.key(at) if key else self.source.value(at)
        self.issues.append(Issue(self.source.path, line, col, message, node))

    def run(self) -> Plan | None:
        data = self.document.data
        if not isinstance(data, dict):
            self.fail((), "a journey file must be a mapping with 'journey', 'name', 'audience', 'start' and 'nodes'")
            return None
        header, problems = shape.validate(JourneyHeader, data, self.source)
        self.issues.extend(problems)
        self._read_nodes(data.get("nodes"))
        self.account_fields = conditions.ACCOUNT_FIELDS | self._custom_account_attributes()
        self.names_interest = isinstance(data.get("solution_interest"), str)
        self.interest = self._solution_interest(data.get("solution_interest"))
        self.role_template = (
            self.workspace.role_templates.get(self.interest.role_template) if self.interest is not None else None
        )
        audience = data.get("audience")
        if isinstance(audience, dict) and isinstance(audience.get("accounts"), str):
            scope = conditions.Scope({"account": self.account_fields}, "audience conditions")
            self._expression(("audience", "accounts"), audience["accounts"], scope, None, "accounts")
        for node in self.nodes.values():
            self._check_node(node)
        self._check_references()
        self._check_holdouts()
        start = data.get("start")
        if isinstance(start, str) and self.raw_nodes:
            self._check_graph(start)
        if self.issues or header is None:
            return None
        return self._plan(header)

    # --- nodes ---------------------------------------------------------------------------------------

    def _read_nodes(self, raw_nodes: Any) -> None:
        if not isinstance(raw_nodes, list):
            return  # the header check reported it
        for index, raw in enumerate(raw_nodes):
            at: PathKey = ("nodes", index)
            if not isinstance(raw, dict):
                self.fail(at, "each node must be a mapping with at least 'id' and 'type'")
                continue
            node_id = raw.get("id")
            label = node_id if isinstance(node_id, str) else None
            if "id" not in raw:
                self.fail(at, f"node #{index + 1} has no 'id'")
            elif label is not None and label in self.raw_nodes:
                first_line = self.source.value(("nodes", self.raw_nodes[label][0], "id"))[0]
                self.fail((*at, "id"), f"duplicate node id '{label}' (first defined on line {first_line})", label)
                continue
            if label is not None:
                self.raw_nodes[label] = (index, raw)
            node_type = raw.get("type")
            if "type" not in raw:
                self.fail(at, f"missing required key 'type' (one of {', '.join(NODE_MODELS)})", label)
                continue
            if not isinstance(node_type, str) or node_type not in NODE_MODELS:  # a list is not even hashable
                hint = did_you_mean(str(node_type), NODE_MODELS)
                if node_type in PERSON_STEP_TYPES:
                    hint = f": '{node_type}' is a step of a people_split path, not a node; put it in a path's steps"
                self.fail((*at, "type"), f"unknown node type '{node_type}'{hint}", label)
                continue
            model, problems = shape.validate(NODE_MODELS[node_type], raw, self.source, at, label)
            if "id" not in raw:  # already said above, in words that count the node
                problems = [problem for problem in problems if problem.message != "missing required key 'id'"]
            self.issues.extend(problems)
            if model is not None and label is not None:
                self.nodes[label] = model

    def _custom_account_attributes(self) -> frozenset[str]:
        names: set[str] = set()
        for _, raw in self.raw_nodes.values():
            if raw.get("type") == "update_account":
                for key in ("set", "add"):
                    if isinstance(raw.get(key), dict):
                        names.update(str(name) for name in raw[key])
            if raw.get("type") == "external_action" and isinstance(raw.get("store"), dict):
                names.update(str(name) for name in raw["store"])
        return frozenset(names)

    def _at(self, node: NodeBase, *rest: str | int) -> PathKey:
        return ("nodes", self.raw_nodes[node.id][0], *rest)

    def _check_node(self, node: NodeBase) -> None:
        match node:
            case SendEmail():
                self._check_recipients(node, node.to)
                self._check_subject(node)
                self._check_template(node)
            case WaitForEvent(event=event, where=where):
                known = self.workspace.event_types.fields  # built-in types and those of events.yaml
                if event not in known:
                    hint = did_you_mean(event, known)
                    self.fail(self._at(node, "event"), f"event: unknown event type '{event}'{hint}", node.id)
                elif where is not None:
                    fields = conditions.EVENT_COMMON_FIELDS | known[event]
                    variables = {"event": fields, "account": self.account_fields, "person": conditions.PERSON_FIELDS}
                    notes = self.event_notes.get(event)
                    if notes is None:
                        notes = self.event_notes[event] = _event_notes(event, known)
                    scope = conditions.Scope(variables, "event conditions", notes)
                    self._expression(self._at(node, "where"), where, scope, node.id, "where")
            case Split(paths=paths):
                scope = self._scope("split conditions", "account")
                for index, path in enumerate(paths):
                    self._expression(
                        self._at(node, "paths", index, "when"), path.when, scope, node.id, f"paths[{index}].when"
                    )
            case VariantSplit():
                self._check_variants(node)
            case UpdateAccount():
                for key in ("set", "add"):
                    for name in getattr(node, key) or {}:
                        if name in READ_ONLY_ACCOUNT_FIELDS:
                            message = f"{key}: '{name}' cannot be changed by a journey"
                            self.fail(self._at(node, key, name), message, node.id, key=True)
                        elif key == "add" and name in conditions.ACCOUNT_FIELDS - NUMERIC_ACCOUNT_FIELDS:
                            message = f"add: '{name}' is not a number; use 'set' to change it"
                            self.fail(self._at(node, key, name), message, node.id, key=True)
            case ExternalAction(on_response=answers, store=store) if answers or store:
                whens = [path.when for path in answers or []]
                for rest, message, at_key in responses.node_problems(whens, store or {}, READ_ONLY_ACCOUNT_FIELDS):
                    self.fail(self._at(node, *rest), message, node.id, key=at_key)
            case UpdateBuyingGroup() if self.interest is not None:
                for rest, message in group_checks.update_problems(node, self.workspace.buying_groups.stages):
                    self.fail(self._at(node, *rest), message, node.id)
            case RemoveFromBuyingGroup(who=who):
                for rest, message in group_checks.member_problems(who, self.role_template):
                    self.fail(self._at(node, *rest), message, node.id)
                if who.where is not None:
                    scope = self._scope("member conditions", "person", "account")
                    self._expression(self._at(node, "who", "where"), who.where, scope, node.id, "who.where")
            case SalesAlert():
                self._check_subject(node)
                self._check_template(node)
            case WaitForChange(change=change):
                custom = self.account_fields - conditions.ACCOUNT_FIELDS
                stages = self.workspace.buying_groups.stages if self.interest is not None else None
                for rest, message in change_checks.problems(
                    change, custom, stages, self.role_template, self.names_interest
                ):
                    self.fail(self._at(node, *rest), f"change.{message}", node.id)
            case PeopleSplit():
                self._check_people_split(node)
            case AddToJourney() | RemoveFromJourney():
                own, shown = self.document.data.get("journey"), display(self.workspace.folder) + "/"
                problem = journey_refs.reference_problem(node, own, self.workspace.journeys, shown)
                if problem is not None:
                    self.fail(self._at(node, "journey"), problem, node.id)
        if node.type in BUYING_GROUP_TYPES and not self.names_interest:
            self.fail(
                self._at(node, "type"),
                f"'{node.type}' works on a buying group: give the journey a 'solution_interest'",
                node.id,
            )
        service = getattr(node, "service", None)
        if service is not None and self.workspace.services_loaded and service not in self.workspace.services.services:
            if not self.workspace.has_services_file:
                message = f"service: unknown service '{service}': there is no services.yaml next to the journey"
            else:
                message = (
                    f"service: unknown service '{service}'{did_you_mean(service, self.workspace.services.services)}"
                )
            self.fail(self._at(node, "service"), message, node.id)

    def _check_variants(self, node: VariantSplit) -> None:
        """Names tell the variants apart in analytics; one holdout is the control group."""
        first: dict[str, int] = {}
        holdout: int | None = None
        for index, variant in enumerate(node.variants):
            if variant.name in first:
                message = (
                    f"variants[{index}].name: variant '{variant.name}' is already variants[{first[variant.name]}];"
                    " give each variant its own name"
                )
                self.fail(self._at(node, "variants", index, "name"), message, node.id)
            first.setdefault(variant.name, index)
            if variant.holdout and holdout is not None:
                message = f"variants[{index}].holdout: variants[{holdout}] is already the holdout; one is allowed"
                self.fail(self._at(node, "variants", index, "holdout"), message, node.id)
            elif variant.holdout:
                holdout = index

    def _check_holdouts(self) -> None:
        """A holdout account gets no email from the journey: no send_email may be reachable from its path, even
        after it rejoins the other variants (an email there would reach the control group and spoil the test).
        Coming back to the same split keeps the account in the holdout, so the walk follows only its edge there."""
        splits = [node for node in self.nodes.values() if isinstance(node, VariantSplit)]
        if not any(variant.holdout for split in splits for variant in split.variants):
            return
        successors = self.successors
        sends = [node_id for node_id, (_, raw) in self.raw_nodes.items() if people_checks.sends_email(raw)]
        may_send = graph.reaching(sends, successors)
        for node in splits:
            for index, variant in enumerate(node.variants):
                if not variant.holdout or variant.next not in may_send:
                    continue
                path = variants.holdout_route(node.id, variant.next, successors, frozenset(sends))
                if path is None:
                    continue
                sender = f"{self.raw_nodes[path[-1]][1].get('type')} '{path[-1]}'"  # send_email, or a people_split
                how = (
                    f"leads straight to {sender}"
                    if len(path) == 1
                    else f"reaches {sender} via " + " -> ".join(f"'{step}'" for step in path[:-1])
                )
                message = (
                    f"variants[{index}].next: holdout '{variant.name}' {how}:"
                    " holdout accounts must get no email; route the holdout around every send_email"
                )
                self.fail(self._at(node, "variants", index, "next"), message, node.id)

    def _variables(self, *names: str) -> dict[str, frozenset[str] | None]:
        known: dict[str, frozenset[str] | None] = {
            "account": self.account_fields,
            "person": conditions.PERSON_FIELDS,
        }
        variables = {name: known[name] for name in names}
        if self.names_interest:
            variables["buying_group"] = conditions.BUYING_GROUP_FIELDS
        return variables

    def _scope(self, where: str, *names: str) -> conditions.Scope:
        notes = {} if self.names_interest else {"buying_group": "give the journey a 'solution_interest' first"}
        return conditions.Scope(self._variables(*names), where, notes)

    def _expression(self, at: PathKey, source: str, scope: conditions.Scope, node: str | None, field: str) -> None:
        for problem in conditions.check(source, scope):
            self.fail(at, f"{field}: {problem}", node)

    def _check_recipients(self, node: SendEmail, to: Recipients) -> None:
        if (to.roles or to.missing_roles) and not self.names_interest:
            self.fail(
                self._at(node, "to"), "to: roles need a buying group: give the journey a 'solution_interest'", node.id
            )
        if to.roles and self.role_template is not None:
            roles = [role.role for role in self.role_template.roles]
            for index, role in enumerate(to.roles):
                if role not in roles:
                    hint = did_you_mean(role, roles)
                    message = f"to.roles: role template '{self.role_template.id}' has no role '{role}'{hint}"
                    self.fail(self._at(node, "to", "roles", index), message, node.id)
        if to.where is not None:
            scope = self._scope("recipient conditions", "person", "account")
            self._expression(self._at(node, "to", "where"), to.where, scope, node.id, "to.where")

    def _check_subject(self, node: SendEmail | SalesAlert) -> None:
        for _, problem in templates.check(node.subject, False, self.account_fields, self.names_interest):
            self.fail(self._at(node, "subject"), f"subject: {problem}", node.id)
        if isinstance(node, SalesAlert):
            for _, problem in group_checks.alert_problems(node.subject, False):
                self.fail(self._at(node, "subject"), f"subject: {problem}", node.id)

    def _check_template(self, node: SendEmail | SalesAlert) -> None:
        self._check_template_at(node, node.template, self._at(node, "template"), "template")

    def _check_template_at(self, node: NodeBase, template: str, at: PathKey, field: str) -> None:
        located = self.located.get(template)
        if located is None:  # many nodes share a template: its path is looked up once
            located = self.located[template] = self._locate_template(template)
        for file, name in located.reads:
            self._read_template(node, file, name)
        if located.problem is not None:
            with_field, message = located.problem
            self.fail(at, f"{field}: {message}" if with_field else message, node.id)

    def _locate_template(self, template: str) -> _Located:
        # Templates are compiled into the Plan: a path ('../') or a symlink leading out of the journey's folder
        # could put any file the validating process can read (/proc/self/environ: its secrets) into it.
        folder = Path(os.path.abspath(self.path.parent))
        file = Path(os.path.normpath(folder / template))
        if not file.is_relative_to(folder):
            return _Located([], (True, f"'{template}' is outside the journey's folder"))
        if not _resolves_inside(file, folder):
            return _Located([], (False, _symlink_out(template, file)))
        if not _is_file(file):
            near = [str(path.relative_to(folder)) for path in folder.rglob("*.j2")]
            return _Located([], (True, f"'{template}' not found{did_you_mean(template, near)}"))
        text_twin = template.removesuffix(".j2").removesuffix(".html").removesuffix(".htm") + ".txt.j2"
        if text_twin != template and _is_file(folder / text_twin):
            if not _resolves_inside(folder / text_twin, folder):
                return _Located([(file, template)], (False, _symlink_out(text_twin, folder / text_twin)))
            return _Located([(file, template), (folder / text_twin, text_twin)], None)
        return _Located([(file, template)], None)

    def _check_people_split(self, node: PeopleSplit) -> None:
        """Each path's condition over the person, its steps' roles, fields and templates."""
        scope = self._scope("people conditions", "person", "account")
        for index, path in enumerate(node.paths):
            self._expression(self._at(node, "paths", index, "when"), path.when, scope, node.id, f"paths[{index}].when")
        for rest, message, at_key in people_checks.split_problems(node, self.role_template, self.names_interest):
            self.fail(self._at(node, *rest), message, node.id, key=at_key)
        for rest, label, step in people_checks.located_steps(node):
            if isinstance(step, PersonEmail):
                for _, problem in templates.check(step.subject, False, self.account_fields, self.names_interest):
                    self.fail(self._at(node, *rest, "subject"), f"{label}.subject: {problem}", node.id)
                self._check_template_at(node, step.template, self._at(node, *rest, "template"), f"{label}.template")

    def _read_template(self, node: NodeBase, file: Path, name: str) -> None:
        if name in self.templates:
            return
        shown = display(file)
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            self.issues.append(Issue(shown, 1, 1, f"template cannot be read: {error}", node.id))
            return
        html = templates.is_html(name)
        for line, problem in templates.check(source, html, self.account_fields, self.names_interest):
            self.issues.append(Issue(shown, line, 1, problem, node.id))
        if isinstance(node, SalesAlert):
            for line, problem in group_checks.alert_problems(source, html):
                self.issues.append(Issue(shown, line, 1, problem, node.id))
        self.templates[name] = source

    def _solution_interest(self, interest: Any) -> Any:
        if not isinstance(interest, str):
            return None
        found = self.workspace.solution_interests.get(interest)
        if found is None and self.workspace.buying_groups_loaded:
            if not self.workspace.has_buying_groups_file:
                message = f"solution_interest: unknown solution interest '{interest}': there is no buying_groups.yaml"
                message += " next to the journey"
            else:
                hint = did_you_mean(interest, self.workspace.solution_interests)
                message = f"solution_interest: unknown solution interest '{interest}'{hint}"
            self.fail(("solution_interest",), message)
        return found

    # --- graph ---------------------------------------------------------------------------------------

    def _check_references(self) -> None:
        # Nodes whose exits are already reported (unknown target, or the node itself invalid) are not
        # reported again as having no way to an end.
        self.broken_exits = {node_id for node_id in self.raw_nodes if node_id not in self.nodes}
        for node_id, (index, _) in self.raw_nodes.items():
            for _, target, where in self.branches[node_id]:
                if target not in self.raw_nodes:
                    field = shape.dotted(where)
                    hint = did_you_mean(target, self.raw_nodes)
                    self.fail(("nodes", index, *where), f"{field}: unknown node '{target}'{hint}", node_id)
                    self.broken_exits.add(node_id)

    @cached_property
    def branches(self) -> dict[str, list[tuple[str, str, PathKey]]]:
        """Each node's raw_edges, read once (after _read_nodes): the checks below and the Plan all use them."""
        return {node_id: list(raw_edges(raw)) for node_id, (_, raw) in self.raw_nodes.items()}

    @cached_property
    def successors(self) -> dict[str, list[str]]:
        return {
            node_id: [target for _, target, _ in branches if target in self.raw_nodes]
            for node_id, branches in self.branches.items()
        }

    def _check_graph(self, start: str) -> None:
        if start not in self.raw_nodes:
            self.fail(("start",), f"start: unknown node '{start}'{did_you_mean(start, self.raw_nodes)}")
            return
        successors = self.successors
        reached = graph.reachable(start, successors)
        for node_id, (index, _) in self.raw_nodes.items():
            if node_id not in reached:
                self.fail(("nodes", index), f"unreachable: no path from start '{start}' leads here", node_id)
        types = {node_id: str(raw.get("type")) for node_id, (_, raw) in self.raw_nodes.items()}
        ends = [node_id for node_id, node_type in types.items() if node_type == "end"]
        finishing = graph.reaching(ends, successors)
        order = [node_id for node_id in self.raw_nodes if node_id in reached]
        for component in graph.strongly_connected(order, successors):
            first = component[0]
            at: PathKey = ("nodes", self.raw_nodes[first][0])
            is_loop = graph.is_loop(component, successors)
            if is_loop and not any(types[member] in WAITING_TYPES for member in component):
                path = " -> ".join(f"'{member}'" for member in graph.loop_path(component, successors))
                self.fail(
                    at,
                    f"loop {path} has no wait: an account would go round it forever;"
                    " add a wait, wait_for_event or wait_for_completeness",
                    first,
                )
            trapped = first not in finishing and all(
                target in component for member in component for target in successors[member]
            )
            broken_exit = any(member in self.broken_exits for member in component)
            if trapped and types[first] != "end" and not broken_exit:
                where = (
                    "this node"
                    if len(component) == 1
                    else "loop " + " -> ".join(f"'{member}'" for member in graph.loop_path(component, successors))
                )
                self.fail(at, f"no way to an end: {where} never reaches an 'end' node", first)

    # --- plan ----------------------------------------------------------------------------------------

    def _sends_email(self) -> bool:
        """Whether any node emails people (a send_email, or a people_split with an email step)."""
        return any(people_checks.sends_email(raw) for _, raw in self.raw_nodes.values())

    def _plan(self, header: JourneyHeader) -> Plan:
        edges = {
            node_id: [Edge(label=label, target=target) for label, target, _ in branches]
            for node_id, branches in self.branches.items()
        }
        used_services = {getattr(node, "service", None) for node in self.nodes.values()}
        plan = Plan(
            journey=header.journey,
            name=header.name,
            description=header.description,
            source=self.source.path,
            audience=header.audience,
            solution_interest=self.interest,
            role_template=self.role_template,
            stages=self.workspace.buying_groups.stages if self.interest is not None else None,
            send_window=header.send_window,
            schedule=header.schedule,
            start=header.start,
            nodes=self.nodes,
            edges=edges,
            templates=self.templates,
            services={name: s for name, s in self.workspace.services.services.items() if name in used_services},
            custom_account_attributes=sorted(self.account_fields - conditions.ACCOUNT_FIELDS),
            # Only a journey that sends email is bound by them: the others keep their version when limits change.
            limits=self.workspace.limits if self._sends_email() else None,
        )
        return plan.with_version()


def _is_file(path: Path) -> bool:
    """Path.is_file, also False for a name the file system refuses (longer than 255 bytes: ENAMETOOLONG)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _resolves_inside(file: Path, folder: Path) -> bool:
    """Whether the file, its symlinks followed, is still inside the journey's folder."""
    return file.resolve().is_relative_to(folder.resolve())


def _symlink_out(name: str, file: Path) -> str:
    return (
        f"template: '{name}' is a link to '{file.resolve()}', outside the journey's folder: "
        "copy the template into the folder"
    )
