"""An execution drawn as its state machine's graph, as the Step Functions console draws it.

The graph is built from the ASL definition itself, generically: every state of any type (Task,
Choice, Parallel with its branches, Map with its processor, Pass, Wait, Succeed, Fail), every
`Next`, `Default`, choice rule and `Catch` becomes a node or an edge, so a change to the files in
statemachine/ shows up here without a line of this module changing. Graphviz's `dot` lays it out;
the visit of each state (from the execution's history) decides its colour, and the edges the
execution took are drawn bold, the ones it took because a step failed (a Catch) in red, so the
compensation path stands out.
"""

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from order_ops.executions import ExecutionPath, StateVisit

START, END = "__start__", "__end__"
JOIN_SUFFIX = " (end)"  # the point where a Parallel's branches (or a Map's items) meet again
DOT_TIMEOUT_SECONDS = 20


class GraphError(Exception):
    """The graph could not be drawn (Graphviz missing or failing); the message says why."""


class Visit(StrEnum):
    """What an execution did in a state, and the class its SVG node carries."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # every attempt failed (the state's Catch, if any, took over)
    COMPENSATION = "compensation"  # reached on the path after a Catch, and succeeded
    RUNNING = "running"
    NOT_VISITED = "not-visited"


COLOURS = {  # fill, border
    Visit.SUCCEEDED: ("#d7f0d9", "#2e7d32"),
    Visit.FAILED: ("#fbd5d5", "#c62828"),
    Visit.COMPENSATION: ("#ffe7c2", "#e65100"),
    Visit.RUNNING: ("#d6e6fb", "#1565c0"),
    Visit.NOT_VISITED: ("#ffffff", "#9e9e9e"),
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""
    catch: bool = False  # taken when the source fails


@dataclass
class StateGraph:
    """States (with their ASL type) and the edges between them; nested scopes become clusters."""

    types: dict[str, str] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    clusters: dict[str, list[str]] = field(default_factory=dict)  # Parallel/Map state -> its states


def build_graph(definition: dict[str, Any]) -> StateGraph:
    graph = StateGraph()
    graph.edges.append(Edge(START, definition["StartAt"]))
    _add_scope(graph, definition, exit_to=END)
    return graph


def _add_scope(graph: StateGraph, scope: dict[str, Any], exit_to: str, cluster: str | None = None) -> None:
    """Every state of one `States` block; a state that ends the block leads to `exit_to`."""
    for name, state in scope["States"].items():
        kind = state["Type"]
        graph.types[name] = kind
        if cluster is not None:
            graph.clusters.setdefault(cluster, []).append(name)
        for branch in _branches(state):
            graph.edges.append(Edge(name, branch["StartAt"], "branch" if kind == "Parallel" else "each item"))
            _add_scope(graph, branch, exit_to=_join(name), cluster=name)
        if kind in {"Parallel", "Map"}:
            graph.types[_join(name)] = "Join"
            graph.clusters.setdefault(name, []).append(_join(name))
        leaving = _join(name) if kind in {"Parallel", "Map"} else name
        graph.edges += list(_edges_of(leaving, state, exit_to))
        for catch in state.get("Catch", []):
            graph.edges.append(Edge(name, catch["Next"], " | ".join(catch["ErrorEquals"]), catch=True))


def _edges_of(name: str, state: dict[str, Any], exit_to: str) -> list[Edge]:
    if state["Type"] == "Choice":
        rules = [Edge(name, rule["Next"], _rule_label(rule)) for rule in state.get("Choices", [])]
        default = [Edge(name, state["Default"], "default")] if "Default" in state else []
        return rules + default
    if "Next" in state:
        return [Edge(name, state["Next"])]
    return [Edge(name, exit_to)]  # End: true, Succeed and Fail end their scope


def _rule_label(rule: dict[str, Any]) -> str:
    if "Condition" in rule:
        return str(rule["Condition"])[:40]
    variable = rule.get("Variable", "")
    tests = [f"{key} {json.dumps(value)}" for key, value in rule.items() if key not in {"Variable", "Next"}]
    return f"{variable} {' '.join(tests)}".strip()[:40]


def _branches(state: dict[str, Any]) -> list[dict[str, Any]]:
    if state["Type"] == "Parallel":
        return list(state.get("Branches", []))
    processor = state.get("ItemProcessor") or state.get("Iterator")
    return [processor] if state["Type"] == "Map" and processor else []


def _join(name: str) -> str:
    return f"{name}{JOIN_SUFFIX}"


# -- an execution's visits --------------------------------------------------------------------


def visit_of(visit: StateVisit, running: bool) -> Visit:
    """Failed when every attempt failed; a state that failed and then succeeded on a retry succeeded."""
    if visit.attempts and len(visit.errors) >= visit.attempts:
        return Visit.FAILED
    if visit.exited is None and running:
        return Visit.RUNNING
    return Visit.SUCCEEDED


def classify(graph: StateGraph, path: ExecutionPath | None) -> tuple[dict[str, Visit], set[Edge]]:
    """The visit of every state and the edges the execution took."""
    visits = dict.fromkeys(graph.types, Visit.NOT_VISITED)
    taken: set[Edge] = set()
    if path is None:
        return visits, taken
    running = path.status == "RUNNING"
    by_source: dict[str, list[Edge]] = {}
    for edge in graph.edges:
        by_source.setdefault(edge.source, []).append(edge)
    compensating = False
    seen = [START]
    for visit in path.visits:
        outcome = Visit.FAILED if graph.types.get(visit.name) == "Fail" else visit_of(visit, running)
        route = _route(by_source, seen, visit.name)
        taken.update(route)
        if route and route[0].catch:  # left through its Catch: the state failed (a Parallel too)
            visits[route[0].source] = Visit.FAILED
            compensating = True
        visits[visit.name] = Visit.COMPENSATION if outcome is Visit.SUCCEEDED and compensating else outcome
        seen.append(visit.name)
    if not running:
        taken.update(_route(by_source, seen[-1:], END))
    return visits, taken


def _route(by_source: dict[str, list[Edge]], seen: list[str], target: str) -> list[Edge]:
    """The edges that brought the execution to `target`: from the latest visited state with an
    edge to it, directly or through the join of a Parallel or Map (branches interleave)."""
    for source in reversed(seen):
        for edge in by_source.get(source, []):
            if edge.target == target:
                return [edge]
            onward = [e for e in by_source.get(edge.target, []) if e.target == target]
            if edge.target.endswith(JOIN_SUFFIX) and onward:
                return [edge, onward[0]]
    return []


# -- drawing ----------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_id(name: str) -> str:
    """The SVG id of a state's node (what the page's links and the browser tests look for)."""
    return "state-" + "".join(ch if ch.isalnum() else "-" for ch in name)


def _label(name: str, visit: StateVisit | None) -> str:
    if visit is None:
        return name
    facts = []
    if visit.exited is not None:
        facts.append(f"{(visit.exited - visit.entered).total_seconds():.2f} s")
    if visit.retries:
        facts.append(f"{visit.retries} retr{'y' if visit.retries == 1 else 'ies'}")
    return name + ("\n" + " · ".join(facts) if facts else "")


def to_dot(graph: StateGraph, path: ExecutionPath | None) -> str:
    visits, taken = classify(graph, path)
    details = {visit.name: visit for visit in path.visits} if path else {}
    lines = [
        "digraph execution {",
        '  graph [rankdir=TB, bgcolor="transparent", fontname="sans-serif", nodesep=0.35, ranksep=0.45];',
        '  node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=11, penwidth=1.4];',
        '  edge [fontname="sans-serif", fontsize=9, color="#9e9e9e", fontcolor="#616161", arrowsize=0.7];',
        f'  {_quote(START)} [label="Start", shape=circle, width=0.55, fixedsize=true, fillcolor="#eeeeee",'
        f' id="{node_id("Start")}"];',
        f'  {_quote(END)} [label="End", shape=doublecircle, width=0.45, fixedsize=true, fillcolor="#eeeeee",'
        f' id="{node_id("End")}"];',
    ]
    clustered = {name for members in graph.clusters.values() for name in members}
    for name in graph.types:
        if name not in clustered:
            lines.append("  " + _node(graph, name, visits[name], details.get(name)))
    for owner, members in graph.clusters.items():
        lines.append(f"  subgraph {_quote('cluster_' + owner)} {{")
        lines.append(f'    label={_quote(owner)}; style="dashed,rounded"; color="#bdbdbd"; fontsize=10;')
        lines += ["    " + _node(graph, name, visits[name], details.get(name)) for name in members]
        lines.append("  }")
    for edge in graph.edges:
        lines.append("  " + _edge(edge, edge in taken))
    lines.append("}")
    return "\n".join(lines)


def _node(graph: StateGraph, name: str, visit: Visit, detail: StateVisit | None) -> str:
    fill, border = COLOURS[visit]
    kind = graph.types[name]
    shape = {"Choice": "diamond", "Join": "point", "Succeed": "box", "Fail": "box"}.get(kind, "box")
    peripheries = 2 if kind in {"Succeed", "Fail"} else 1
    label = "" if kind == "Join" else _label(name, detail)
    return (
        f"{_quote(name)} [label={_quote(label)}, shape={shape}, peripheries={peripheries},"
        f' fillcolor="{fill}", color="{border}", id="{node_id(name)}", class="{visit.value}",'
        f" tooltip={_quote(f'{name} ({kind}): {visit.value}')}];"
    )


def _edge(edge: Edge, taken: bool) -> str:
    attributes = [f"label={_quote(edge.label)}"] if edge.label else []
    if edge.catch:
        attributes += ["style=dashed", 'color="#c62828"' if taken else 'color="#e57373"']
    elif taken:
        attributes.append('color="#2e7d32"')
    if taken:
        attributes += ["penwidth=2.6", 'class="taken"']
    return f"{_quote(edge.source)} -> {_quote(edge.target)} [{', '.join(attributes)}];"


def render_svg(dot_source: str) -> str:
    """The SVG element Graphviz lays out for the DOT source (XML prologue stripped for inlining)."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphError("Graphviz is not installed: apt-get install graphviz (make run installs it)")
    try:
        result = subprocess.run(  # noqa: S603 - our own binary, the source on stdin
            [dot, "-Tsvg"],
            input=dot_source,
            capture_output=True,
            text=True,
            timeout=DOT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GraphError("Graphviz took too long to lay out the graph") from exc
    if result.returncode != 0:
        raise GraphError(f"Graphviz failed: {result.stderr.strip()[:300]}")
    svg = result.stdout
    return svg[svg.index("<svg") :]


def execution_svg(definition: dict[str, Any], path: ExecutionPath | None) -> str:
    return render_svg(to_dot(build_graph(definition), path))
