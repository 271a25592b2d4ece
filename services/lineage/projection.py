"""Events -> graph rows, a batch at a time. Handlers (domain.py) ask a ``GraphBatch`` for nodes
and edges; the batch keeps them in memory, in columns, and the store writes the whole batch with
a few bulk statements in one DuckDB transaction together with the stream position."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cairn.kernel.envelope import Event
from cairn.services.lineage import trace_facts  # noqa: F401 - registers the trace.* handlers
from cairn.services.lineage.domain import (
    CLOSABLE,
    MAPPING,
    PRODUCED,
    STRUCTURAL,
    EventMapping,
    NodeSpec,
    kind_of,
    node_id,
)

NODE_COLUMNS = ("nid", "key", "kind", "project", "name", "version", "parent", "title", "seq", "time")
EDGE_COLUMNS = ("src", "dst", "type", "project", "label", "seq", "time", "until_seq", "until_time")


@dataclass
class GraphBatch:
    """Everything one batch of events changes, in application order where order matters."""

    nodes: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    edges: list[tuple[Any, ...]] = field(default_factory=list)  # edges that never end
    structure_edges: list[tuple[Any, ...]] = field(default_factory=list)  # not walked (STRUCTURAL)
    artifact_edges: list[tuple[Any, ...]] = field(default_factory=list)  # run -> blob (store.py)
    interval_edges: list[list[Any]] = field(default_factory=list)  # edges that may end (CLOSABLE)
    open_edges: dict[tuple[int, str], list[int]] = field(default_factory=dict)  # (dst, type) -> rows
    closes: dict[tuple[int, str], tuple[int, str]] = field(default_factory=dict)  # first close per (dst, type)
    renames: dict[int, str] = field(default_factory=dict)
    statuses: list[tuple[int, str, int, str]] = field(default_factory=list)
    types: Counter[tuple[str, bool]] = field(default_factory=Counter)
    ids: dict[str, int] = field(default_factory=dict)  # key -> node id, may be shared between batches

    def nid(self, key: str) -> int:
        found = self.ids.get(key)
        if found is None:
            found = self.ids[key] = node_id(key)
        return found

    def node(self, spec: NodeSpec, event: Event) -> int:
        nid = self.nid(spec.key)
        if nid not in self.nodes:  # the first event to mention a node creates it
            parent = self.nid(spec.parent) if spec.parent else None
            self.nodes[nid] = (nid, spec.key, spec.kind, spec.project, spec.name, spec.version, parent,
                               spec.title, event.sequence, event.time)
        return nid

    def edge(self, src: int, dst: int, edge_type: str, event: Event, label: str | None = None) -> None:
        row = (src, dst, edge_type, event.project, label, event.sequence, event.time, None, None)
        if edge_type in CLOSABLE:
            self.interval_edges.append(list(row))
            self.open_edges.setdefault((dst, edge_type), []).append(len(self.interval_edges) - 1)
        elif edge_type in STRUCTURAL:
            self.structure_edges.append(row)
        elif edge_type == PRODUCED and kind_of(dst) == "blob":
            self.artifact_edges.append(row)
        else:
            self.edges.append(row)

    def close_edges_into(self, dst: int, edge_type: str, event: Event) -> None:
        """End every open ``edge_type`` edge into ``dst`` at this event (an alias moving away)."""
        for index in self.open_edges.pop((dst, edge_type), []):
            self.interval_edges[index][7:9] = [event.sequence, event.time]
        # Edges from earlier batches: the first close in a batch ends them (later ones find none).
        self.closes.setdefault((dst, edge_type), (event.sequence, event.time))

    def rename(self, nid: int, name: str) -> None:
        row = self.nodes.get(nid)
        if row is not None:
            self.nodes[nid] = (*row[:4], name, *row[5:])
        self.renames[nid] = name

    def set_status(self, nid: int, status: str, event: Event) -> None:
        self.statuses.append((nid, status, event.sequence, event.time))

    def columns(self, rows: list[Any], names: tuple[str, ...]) -> dict[str, list[Any]]:
        return {name: list(col) for name, col in zip(names, zip(*rows))} if rows else {n: [] for n in names}


class LineageProjection:
    """The projection's entry point: count every event's type, apply those the graph maps."""

    def __init__(self, mapping: EventMapping = MAPPING, cached_ids: int = 200_000) -> None:
        self.mapping = mapping
        self.cached_ids = cached_ids
        self._ids: dict[str, int] = {}

    def new_batch(self) -> GraphBatch:
        """An empty batch that shares this projection's cache of node ids (ids are pure hashes)."""
        if len(self._ids) > self.cached_ids:
            self._ids.clear()
        return GraphBatch(ids=self._ids)

    def __call__(self, batch: GraphBatch, event: Event) -> None:
        handler = self.mapping.handler_for(event.type)
        batch.types[(event.type, handler is not None)] += 1
        if handler is not None:
            handler(batch, event)


def projection() -> LineageProjection:
    return LineageProjection()
