"""Graph checks and graph facts of a workload spec (networkx; pure).

``check_graph`` raises ``ValueError`` whose message starts with the offending field
(``edges.3.to: ...``) so loaders can name it. ``outgoing`` and ``fanout_joins`` are the
facts the session expander walks by.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hetsim.specs.workload import EdgeSpec, LoopSpec, WorkloadSpec

PROBABILITY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Outgoing:
    """A node's outgoing edges by kind, each as (edge index, edge)."""

    branches: tuple[tuple[int, EdgeSpec], ...] = ()
    loops: tuple[tuple[int, EdgeSpec], ...] = ()
    parallel: tuple[tuple[int, EdgeSpec], ...] = ()

    @property
    def loop(self) -> LoopSpec | None:
        return self.loops[0][1].loop if self.loops else None


@dataclass
class _Groups:
    branches: list[tuple[int, EdgeSpec]] = field(default_factory=list)
    loops: list[tuple[int, EdgeSpec]] = field(default_factory=list)
    parallel: list[tuple[int, EdgeSpec]] = field(default_factory=list)


def outgoing(spec: WorkloadSpec) -> dict[str, Outgoing]:
    """Every node's outgoing edges, split into branch, loop and parallel edges."""
    groups: dict[str, _Groups] = {name: _Groups() for name in spec.nodes}
    for index, edge in enumerate(spec.edges):
        group = groups[edge.from_node]
        kind = group.parallel if edge.parallel else group.loops if edge.loop is not None else group.branches
        kind.append((index, edge))
    return {name: Outgoing(tuple(g.branches), tuple(g.loops), tuple(g.parallel)) for name, g in groups.items()}


def check_graph(spec: WorkloadSpec) -> None:
    """Check names, probabilities, loops, reachability and fan-in of the session graph."""
    _check_edge_names(spec)
    edges_out = outgoing(spec)
    for node, out in edges_out.items():
        _check_node_edges(node, out)
    _check_cycles_bounded(spec)
    entry = resolve_entry(spec)
    _check_reachable(spec, entry)
    _check_joins(spec, edges_out)


def _check_edge_names(spec: WorkloadSpec) -> None:
    known = ", ".join(sorted(spec.nodes))
    seen: dict[tuple[str, str], int] = {}
    for index, edge in enumerate(spec.edges):
        for end in ("from", "to"):
            name = edge.from_node if end == "from" else edge.to
            if name not in spec.nodes:
                raise ValueError(f"edges.{index}.{end}: expected one of the nodes ({known}), got unknown node {name!r}")
        key = (edge.from_node, edge.to)
        if key in seen:
            raise ValueError(
                f"edges.{index}: expected each edge once, got {key[0]} -> {key[1]} again (as edges.{seen[key]})"
            )
        seen[key] = index
    if spec.entry is not None and spec.entry not in spec.nodes:
        raise ValueError(f"entry: expected one of the nodes ({known}), got unknown node {spec.entry!r}")


def _check_node_edges(node: str, out: Outgoing) -> None:
    if out.parallel and (out.branches or out.loops):
        index = (out.branches or out.loops)[0][0]
        raise ValueError(
            f"edges.{index}: expected only parallel edges from node {node!r} (it has some), got a non-parallel edge"
        )
    _check_probabilities(node, out.branches, "")
    _check_probabilities(node, out.loops, "loop-edge ")
    for index, edge in out.loops[1:]:
        if edge.loop != out.loops[0][1].loop:
            raise ValueError(
                f"edges.{index}.loop: expected the same loop as edges.{out.loops[0][0]} (loop edges from "
                f"{node!r} share one loop count), got a different one"
            )


def _check_probabilities(node: str, group: tuple[tuple[int, EdgeSpec], ...], what: str) -> None:
    if not group:
        return
    if len(group) > 1:
        for index, edge in group:
            if edge.probability is None:
                raise ValueError(
                    f"edges.{index}.probability: expected a probability on each of the {len(group)} outgoing "
                    f"{what}edges of node {node!r}, got none"
                )
    total = sum(1.0 if edge.probability is None else edge.probability for _, edge in group)
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        raise ValueError(
            f"edges.{group[0][0]}.probability: expected the outgoing {what}probabilities of node {node!r} to sum "
            f"to 1 (within {PROBABILITY_TOLERANCE:g}), got {total:.12g}"
        )


def _check_cycles_bounded(spec: WorkloadSpec) -> None:
    import networkx as nx  # here, not at import: loading a trace or the CLI never pays for networkx

    graph = nx.DiGraph()
    graph.add_nodes_from(spec.nodes)
    graph.add_edges_from((e.from_node, e.to) for e in spec.edges if e.loop is None)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
    raise ValueError(
        "edges: expected every cycle to hold a loop edge (loop: {iterations: ..., max_iterations: N}), "
        f"got unbounded cycle {path}"
    )


def resolve_entry(spec: WorkloadSpec) -> str:
    """The first node: ``entry`` if given, else the only node without incoming edges."""
    if spec.entry is not None:
        return spec.entry
    targets = {edge.to for edge in spec.edges}
    sources = [name for name in spec.nodes if name not in targets]
    if len(sources) != 1:
        found = ", ".join(sources) if sources else "none"
        raise ValueError(f"entry: expected the name of the first node, got nodes without incoming edges: {found}")
    return sources[0]


def _check_reachable(spec: WorkloadSpec, entry: str) -> None:
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(spec.nodes)
    graph.add_edges_from((e.from_node, e.to) for e in spec.edges)
    reached = nx.descendants(graph, entry) | {entry}
    for name in spec.nodes:
        if name not in reached:
            raise ValueError(f"nodes.{name}: expected a node reachable from the entry node {entry!r}, got none")


def _check_joins(spec: WorkloadSpec, edges_out: dict[str, Outgoing]) -> None:
    joins = fanout_joins(spec, edges_out)
    used = {join for join in joins.values() if join is not None}
    for name, node in spec.nodes.items():
        if node.join and name not in used:
            raise ValueError(
                f"nodes.{name}.join: expected a node where parallel branches meet, got one no fan-out reaches"
            )


def fanout_joins(spec: WorkloadSpec, edges_out: dict[str, Outgoing] | None = None) -> dict[str, str | None]:
    """For every fan-out node, the join node its parallel branches meet at (None: they never meet)."""
    edges_out = edges_out if edges_out is not None else outgoing(spec)
    joins: dict[str, str | None] = {}
    for node, out in edges_out.items():
        if out.parallel:
            _join_of(node, spec, edges_out, joins, ())
    return joins


def _join_of(
    node: str, spec: WorkloadSpec, edges_out: dict[str, Outgoing], memo: dict[str, str | None], stack: tuple[str, ...]
) -> str | None:
    """First join nodes reached from the branches (skipping over nested fan-outs); exactly one or none."""
    if node in memo:
        return memo[node]
    if node in stack:
        raise ValueError(f"nodes.{node}: expected parallel branches to reach a join, got a fan-out cycle")
    found: set[str] = set()
    queue = deque(edge.to for _, edge in edges_out[node].parallel)
    seen: set[str] = set()
    while queue:
        current = queue.popleft()
        if current in seen:
            continue
        seen.add(current)
        if spec.nodes[current].join:
            found.add(current)
            continue
        if edges_out[current].parallel:
            inner = _join_of(current, spec, edges_out, memo, (*stack, node))
            queue.extend(_successors(inner, edges_out) if inner is not None else ())
            continue
        queue.extend(_successors(current, edges_out))
    if len(found) > 1:
        raise ValueError(
            f"nodes.{node}: expected its parallel branches to meet at one join node, "
            f"got several: {', '.join(sorted(found))}"
        )
    memo[node] = next(iter(found), None)
    return memo[node]


def _successors(node: str, edges_out: dict[str, Outgoing]) -> list[str]:
    out = edges_out[node]
    return [edge.to for _, edge in (*out.branches, *out.loops, *out.parallel)]
