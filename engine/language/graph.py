"""Graph checks over a journey: reachability, ways to an end, and loops an account could never leave."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def reachable(start: str, successors: Mapping[str, Iterable[str]]) -> set[str]:
    seen, stack = {start}, [start]
    while stack:
        for target in successors.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def reaching(targets: Iterable[str], successors: Mapping[str, Iterable[str]]) -> set[str]:
    """Every node from which one of `targets` can be reached."""
    predecessors: dict[str, list[str]] = {}
    for source, outs in successors.items():
        for target in outs:
            predecessors.setdefault(target, []).append(source)
    seen = set(targets)
    stack = list(seen)
    while stack:
        for source in predecessors.get(stack.pop(), ()):
            if source not in seen:
                seen.add(source)
                stack.append(source)
    return seen


def strongly_connected(order: list[str], successors: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a 2,000-node chain must not hit the recursion limit).

    Components come out with their members in `order` (file order), so messages are stable.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    position = {name: number for number, name in enumerate(order)}
    for root in order:
        if root in index:
            continue
        work = [(root, iter(successors.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in position:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors.get(child, ()))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component, key=position.__getitem__))
    return components


def is_loop(component: list[str], successors: Mapping[str, Iterable[str]]) -> bool:
    return len(component) > 1 or component[0] in successors.get(component[0], ())


def loop_path(component: list[str], successors: Mapping[str, Iterable[str]]) -> list[str]:
    """One way round the loop from its first node, for a message: ['a', 'b', 'a']."""
    members, start = set(component), component[0]
    previous: dict[str, str] = {}
    queue = [start]
    for node in queue:
        for target in successors.get(node, ()):
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if target in members and target not in previous and target != start:
                previous[target] = node
                queue.append(target)
    return [start, start]
