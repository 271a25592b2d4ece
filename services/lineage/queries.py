"""Graph queries over the lineage read model: resolve a reference, walk upstream or downstream
with a recursive CTE (keyed by node, so each node is visited once, at its shortest depth), and
collect the edges between what was found. Every query takes the caller's projects (None = all):
only edges recorded by events of those projects are followed, so a blob shared by content with
another project never leads into it. ``as_of`` (a sequence or a time) keeps only the edges that
existed then."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cairn.kernel.errors import InvalidInput, NotFound
from cairn.kernel.ids import NAME_RE
from cairn.services.lineage.domain import kind_of, node_id
from cairn.services.lineage.refs import NodeRef, display_ref, parse_ref
from cairn.services.lineage.store import LineageStore

PROJECT_RE = NAME_RE
IMPACT_KINDS = ("run", "model_version", "alias", "deployment", "dataset_version", "job", "pipeline_run")


@dataclass(frozen=True)
class AsOf:
    """A point in the log: a stream sequence or a time (UTC)."""

    seq: int | None = None
    time: datetime | None = None

    @classmethod
    def parse(cls, text: str | None) -> "AsOf | None":
        if text is None or text == "":
            return None
        if text.isdigit():
            return cls(seq=int(text))
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"as_of {text!r} is neither a sequence number nor an ISO time "
                               "(e.g. 1234 or 2026-11-26T09:30:00Z)", details={"field": "as_of"}) from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)  # stored times are UTC
        return cls(time=moment)

    def edge_filter(self, alias: str) -> tuple[str, list[Any]]:
        if self.seq is not None:
            return (f" AND {alias}.seq <= ? AND ({alias}.until_seq IS NULL OR {alias}.until_seq > ?)",
                    [self.seq, self.seq])
        return (f" AND {alias}.time <= ? AND ({alias}.until_time IS NULL OR {alias}.until_time > ?)",
                [self.time, self.time])

    def node_visible(self, seq: int, time: datetime) -> bool:
        return seq <= self.seq if self.seq is not None else time <= self.time  # type: ignore[operator]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq} if self.seq is not None else {"time": self.time.isoformat() + "Z"}  # type: ignore[union-attr]


def _filters(alias: str, projects: list[str] | None, as_of: AsOf | None) -> tuple[str, list[Any]]:
    sql, params = "", []
    if projects is not None:
        sql += f" AND list_contains(?::VARCHAR[], {alias}.project)"
        params.append(projects)
    if as_of is None:
        sql += f" AND {alias}.until_seq IS NULL"  # the graph as it is now
    else:
        more, values = as_of.edge_filter(alias)
        sql += more
        params += values
    return sql, params


def _walk_edges(projects: list[str] | None, as_of: AsOf | None, table: str | None = None,
                with_artifacts: bool = False) -> tuple[str, list[Any]]:
    """The edges a walk may follow, as a subquery with its filters pushed into the scans: project
    names go in as literals (checked against the project-name pattern first) so DuckDB can skip
    data by them; sequences and times are parameters."""
    where = ""
    if projects is not None:
        safe = [p for p in projects if PROJECT_RE.match(p)]
        where = f" AND project IN ({', '.join(repr(p) for p in safe)})" if safe else " AND FALSE"
    if as_of is None:
        ever, ended, params_ever, params_ended = "", " AND until_seq IS NULL", [], []
    else:
        col, value = ("seq", as_of.seq) if as_of.seq is not None else ("time", as_of.time)
        ever, params_ever = f" AND {col} <= ?", [value]
        ended, params_ended = f" AND {col} <= ? AND (until_{col} IS NULL OR until_{col} > ?)", [value, value]
    if table is not None:
        return f"(SELECT src, dst FROM {table} WHERE TRUE{where}{ever})", params_ever
    artifacts, params_artifacts = (f" UNION ALL SELECT src, dst FROM artifact_edges WHERE TRUE{where}{ever}",
                                   params_ever) if with_artifacts else ("", [])
    return (f"(SELECT src, dst FROM flow_edges WHERE TRUE{where}{ever} "
            f"UNION ALL SELECT src, dst FROM interval_edges WHERE TRUE{where}{ended}{artifacts})",
            params_ever + params_ended + params_artifacts)


def node_json(row: tuple[Any, ...], depth: int | None = None) -> dict[str, Any]:
    _, kind, project, name, version, title, status, seq, time = row[:9]
    out = {"ref": display_ref(kind, name, version), "kind": kind, "project": project, "title": title,
           "status": status, "seq": seq, "time": time.isoformat() + "Z"}
    if depth is not None:
        out["depth"] = depth
    return out


class LineageQueries:
    """Read-side queries; each call uses the calling thread's cursor."""

    def __init__(self, store: LineageStore) -> None:
        self.store = store

    def _node_row(self, nid: int) -> tuple[Any, ...] | None:
        rows = self.nodes([nid])
        return rows[0] if rows else None

    def statuses(self, nids: list[int], as_of: AsOf | None = None) -> dict[int, tuple[str, int, datetime]]:
        """The latest status (and its sequence and time) of each of ``nids`` that has one."""
        if not nids:
            return {}
        sql, params = "", list[Any]()
        if as_of is not None:
            sql = " AND seq <= ?" if as_of.seq is not None else " AND time <= ?"
            params = [as_of.seq if as_of.seq is not None else as_of.time]
        rows = self.store.query("SELECT nid, arg_max(status, seq), max(seq), arg_max(time, seq) FROM statuses "
                                f"WHERE nid IN (SELECT unnest(?::BIGINT[])){sql} GROUP BY nid", [nids, *params])
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def _fill_status(self, items: list[dict[str, Any]], nids: list[int], as_of: AsOf | None) -> None:
        found = self.statuses([n for n, i in zip(nids, items) if i["kind"] == "run"], as_of)
        for nid, item in zip(nids, items):
            if nid in found:
                item["status"] = found[nid][0]

    def _key(self, ref: NodeRef) -> str:
        if ref.project is None:
            return f"{ref.kind}:{ref.name}"
        if ref.kind == "dataset":
            return (f"dataset_version:{ref.project}/{ref.name}@v{ref.version}" if ref.version is not None
                    else f"dataset:{ref.project}/{ref.name}")
        if ref.kind != "model":
            return f"{ref.kind}:{ref.project}/{ref.name}"
        found = self.store.query("SELECT key FROM nodes WHERE kind = 'model' AND project = ? AND name = ? "
                                 "ORDER BY seq DESC LIMIT 1", [ref.project, ref.name])
        if not found:
            raise NotFound(f"model {ref.name!r} does not exist in project {ref.project!r}")
        model_id = found[0][0].split("/", 1)[1]
        if ref.version is not None:
            return f"model_version:{ref.project}/{model_id}@v{ref.version}"
        if ref.alias is not None:
            return f"alias:{ref.project}/{model_id}@{ref.alias}"
        return f"model:{ref.project}/{model_id}"

    def resolve(self, text: str, project: str | None, projects: list[str] | None,
                as_of: AsOf | None = None) -> tuple[int, dict[str, Any]]:
        """(node id, node) for a reference the caller may see, or NotFound."""
        ref = parse_ref(text, project)
        if ref.project is not None and projects is not None and ref.project not in projects:
            raise NotFound(f"project {ref.project!r} does not exist or you are not a member")
        nid = node_id(self._key(ref))
        row = self._node_row(nid)
        if row is None or (as_of is not None and not as_of.node_visible(row[7], row[8])):
            when = " at that point" if as_of is not None else ""
            raise NotFound(f"no lineage node {text!r}{when}; the lineage graph knows datasets, runs, models, "
                           "aliases and blobs once their events are in the log")
        if row[2] is None and projects is not None:  # a shared node: visible through an edge of yours
            sql, params = _filters("e", projects, as_of)
            if not self.store.query(f"SELECT 1 FROM edges e WHERE (e.src = ? OR e.dst = ?){sql} LIMIT 1",
                                    [nid, nid, *params]):
                raise NotFound(f"no lineage node {text!r} in your projects")
        node = node_json(row)
        self._fill_status([node], [nid], as_of)
        return nid, node

    def walk(self, nid: int, direction: str, *, depth: int | None, projects: list[str] | None,
             as_of: AsOf | None, kinds: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Every node reachable from ``nid`` (its versions, for a dataset or model), nearest first.

        Each step is a semi-join of the frontier against the walkable edges (so the small side is
        hashed and the edges are scanned once per level), keyed by node so a node is visited once.
        """
        this, other = ("dst", "src") if direction == "upstream" else ("src", "dst")
        # Artifact edges are walked only from a blob; blobs nothing was made from are the leaves
        # of a downstream walk, added in one step at the end (unless the answer leaves blobs out).
        from_blob = kind_of(nid) == "blob"
        edges, edge_params = _walk_edges(projects, as_of, with_artifacts=from_blob)
        seed, seed_params = _walk_edges(projects, as_of, table="structure_edges")
        leaves, leaf_params = _walk_edges(projects, as_of, table="artifact_edges")
        depth_sql = " WHERE depth < ?" if depth is not None else ""
        depth_args = [depth] if depth is not None else []
        final = "SELECT nid, depth FROM walk WHERE depth > 0"
        final_args: list[Any] = []
        if direction == "downstream" and not from_blob and (kinds is None or "blob" in kinds):
            final += f"""
        UNION ALL SELECT a.dst, min(w.depth) + 1 FROM {leaves} a JOIN walk w ON a.src = w.nid
        WHERE a.dst NOT IN (SELECT nid FROM walk){" AND w.depth < ?" if depth is not None else ""}
        GROUP BY a.dst"""
            final_args = [*leaf_params, *depth_args]
        query = f"""
        WITH RECURSIVE walk(nid, depth) USING KEY (nid) AS (
            SELECT nid, 0 FROM (SELECT ?::BIGINT AS nid UNION SELECT v.src FROM {seed} v WHERE v.dst = ?)
            UNION
            SELECT DISTINCT e.{other}, (SELECT max(depth) FROM walk) + 1 FROM {edges} e
            WHERE e.{this} IN (SELECT nid FROM walk{depth_sql})
              AND e.{other} NOT IN (SELECT nid FROM recurring.walk)
        )
        {final}"""
        args = [nid, *seed_params, nid, *edge_params, *depth_args, *final_args]
        depths = dict(self.store.query(query, args))
        if kinds is not None:  # ids carry their kind: nodes of other kinds are never looked up
            depths = {n: d for n, d in depths.items() if kind_of(n) in kinds}
        # The nodes found are looked up in a second step: joining the walk to the nodes table in the
        # same query made DuckDB hash the whole nodes table; a semi-join on the found ids does not.
        rows = self.nodes(list(depths))
        rows.sort(key=lambda row: (depths[row[0]], row[1], row[7]))
        items = [dict(node_json(row, depths[row[0]]), nid=row[0]) for row in rows]
        self._fill_status(items, [row[0] for row in rows], as_of)
        return items

    def nodes(self, nids: list[int]) -> list[tuple[Any, ...]]:
        """Node rows (nid, kind, project, name, version, title, status, seq, time) for ``nids``; a
        version or alias is named after its container (a renamed model renames its versions)."""
        blobs = [n for n in nids if kind_of(n) == "blob"]
        others = [n for n in nids if kind_of(n) != "blob"]
        rows = self.store.query(
            "SELECT n.nid, n.kind, n.project, coalesce(p.name, n.name), n.version, n.title, NULL, n.seq, n.time "
            "FROM nodes n LEFT JOIN nodes p ON p.nid = n.parent WHERE n.nid IN (SELECT unnest(?::BIGINT[]))",
            [others]) if others else []
        if blobs:
            rows += self.store.query("SELECT nid, 'blob', NULL, digest, NULL, NULL, NULL, seq, time FROM blobs "
                                     "WHERE nid IN (SELECT unnest(?::BIGINT[]))", [blobs])
        return rows

    def edges_among(self, nids: list[int], projects: list[str] | None, as_of: AsOf | None) -> list[tuple[Any, ...]]:
        sql, params = _filters("e", projects, as_of)
        return self.store.query(
            "SELECT e.src, e.dst, e.type, min(e.label), min(e.seq), max(e.until_seq) FROM edges e "
            f"WHERE e.src IN (SELECT unnest(?::BIGINT[])) AND e.dst IN (SELECT unnest(?::BIGINT[])){sql} "
            "GROUP BY e.src, e.dst, e.type ORDER BY 5, 1, 2", [nids, nids, *params])

    def graph(self, nid: int, node: dict[str, Any], direction: str, *, depth: int | None,
              projects: list[str] | None, as_of: AsOf | None) -> dict[str, Any]:
        """Nodes and edges around one node: upstream, downstream or both."""
        found: dict[int, dict[str, Any]] = {nid: dict(node, depth=0, nid=nid)}
        for way in (("upstream", "downstream") if direction == "both" else (direction,)):
            for item in self.walk(nid, way, depth=depth, projects=projects, as_of=as_of):
                found.setdefault(item["nid"], item)
        refs = {k: f"{v['project']}/{v['ref']}" if v["project"] else v["ref"] for k, v in found.items()}
        edges = [{"src": refs[s], "dst": refs[d], "type": t, "label": label, "seq": seq, "until_seq": until}
                 for s, d, t, label, seq, until in self.edges_among(list(found), projects, as_of)]
        nodes = [dict((k, v) for k, v in item.items() if k != "nid") | {"id": refs[key]}
                 for key, item in found.items()]
        return {"node": node, "direction": direction, "nodes": nodes, "edges": edges}

    def run_io(self, nid: int, projects: list[str] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(inputs, outputs) of a run: dataset versions it used; blobs it produced and what they
        became (dataset and model versions), plus model versions registered from it."""
        sql, params = _filters("e", projects, None)
        links = self.store.query(
            f"""SELECT 'in', e.src, e.label, e.seq FROM edges e WHERE e.dst = ? AND e.type = 'used'{sql}
                UNION ALL SELECT 'out', e.dst, e.label, e.seq FROM edges e
                WHERE e.src = ? AND e.type = 'produced'{sql}
                UNION ALL SELECT 'out', c.dst, e.label, e.seq FROM edges e JOIN edges c ON c.src = e.dst
                WHERE e.src = ? AND e.type = 'produced' AND c.type = 'content_of'{sql}{sql.replace('e.', 'c.')}
                ORDER BY 1, 4, 2""",
            [nid, *params, nid, *params, nid, *params, *params])
        rows = {row[0]: row for row in self.nodes(list({link[1] for link in links}))}
        inputs = [dict(node_json(rows[n]), label=label) for way, n, label, _ in links if way == "in" and n in rows]
        outputs = [dict(node_json(rows[n]), label=label) for way, n, label, _ in links if way == "out" and n in rows]
        return inputs, outputs

    def runs_in(self, project: str, limit: int) -> list[int]:
        return [r[0] for r in self.store.query(
            "SELECT nid FROM nodes WHERE kind = 'run' AND project = ? ORDER BY seq LIMIT ?", [project, limit])]
