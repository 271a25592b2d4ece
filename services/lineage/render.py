"""Lineage graphs as text (Graphviz DOT, Mermaid) and run lineage as OpenLineage run events."""

from __future__ import annotations

import re
import uuid
from typing import Any

PRODUCER = "https://github.com/cairn-mlops/cairn/tree/main/services/lineage"
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
VERSION_FACET_SCHEMA = "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json"
CAIRN_FACET_SCHEMA = "https://github.com/cairn-mlops/cairn/blob/main/docs/lineage.md#openlineage-export"
SHAPES = {"dataset_version": ("cylinder", "[({label})]"), "dataset": ("cylinder", "[({label})]"),
          "run": ("box", "[{label}]"), "job": ("box", "[{label}]"), "sweep": ("box", "[{label}]"),
          "model_version": ("component", "[[{label}]]"), "model": ("component", "[[{label}]]"),
          "alias": ("cds", ">{label}]"), "deployment": ("house", "{{{{{label}}}}}"),
          "blob": ("note", "({label})"), "commit": ("note", "({label})"), "environment": ("note", "({label})")}
OPENLINEAGE_STATE = {"finished": "COMPLETE", "failed": "FAIL", "killed": "ABORT", "running": "RUNNING",
                     "scheduled": "START"}


def _label(node: dict[str, Any]) -> str:
    ref = node["ref"]
    if node["kind"] in ("blob", "environment") or node["kind"] == "commit":
        kind, _, digest = ref.partition(":")
        ref = f"{kind}:{digest[:12]}"
    return f"{ref}\\n({node['title']})" if node.get("title") else ref


def to_dot(graph: dict[str, Any]) -> str:
    """Graphviz DOT: one node per lineage node (shape by kind), edges labelled by type."""
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    ids = {node["id"]: f"n{i}" for i, node in enumerate(graph["nodes"])}
    for node in graph["nodes"]:
        shape = SHAPES.get(node["kind"], ("ellipse", ""))[0]
        label = _label(node).replace('"', '\\"')
        style = ', style=bold' if node.get("depth") == 0 else ""
        lines.append(f'  {ids[node["id"]]} [label="{label}", shape={shape}{style}];')
    for edge in graph["edges"]:
        lines.append(f'  {ids[edge["src"]]} -> {ids[edge["dst"]]} [label="{edge["type"]}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: dict[str, Any]) -> str:
    """Mermaid flowchart text, for Markdown docs."""
    lines = ["flowchart LR"]
    ids = {node["id"]: f"n{i}" for i, node in enumerate(graph["nodes"])}
    for node in graph["nodes"]:
        text = re.sub(r'["\[\]{}()<>|]', "", _label(node).replace("\\n", " "))
        shape = SHAPES.get(node["kind"], ("", "[{label}]"))[1]
        lines.append(f'  {ids[node["id"]]}{shape.format(label=chr(34) + text + chr(34))}')
    for edge in graph["edges"]:
        lines.append(f'  {ids[edge["src"]]} -->|{edge["type"]}| {ids[edge["dst"]]}')
    return "\n".join(lines) + "\n"


def _dataset(node: dict[str, Any]) -> dict[str, Any]:
    namespace = f"cairn://{node['project']}" if node["project"] else "cairn://blobs"
    ref = node["ref"]
    facets: dict[str, Any] = {}
    if node["kind"] in ("dataset_version", "model_version"):
        name, _, version = ref.partition("@")
        facets["version"] = {"_producer": PRODUCER, "_schemaURL": VERSION_FACET_SCHEMA,
                             "datasetVersion": version.removeprefix("v")}
        ref = name
    elif node["kind"] == "blob" and node.get("label"):
        ref = f"{ref} ({node['label']})"
    return {"namespace": namespace, "name": ref, "facets": facets}


def openlineage_events(project: str, run: dict[str, Any], inputs: list[dict[str, Any]],
                       outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """START (when the run was created) and, once it ended, COMPLETE / FAIL / ABORT events."""
    run_key = run["ref"].removeprefix("run:")
    run_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cairn://{project}/runs/{run_key}"))
    facets = {"cairn_run": {"_producer": PRODUCER, "_schemaURL": CAIRN_FACET_SCHEMA, "project": project,
                            "runId": run_key, "status": run.get("status")}}
    job = {"namespace": f"cairn://{project}", "name": run.get("title") or run_key, "facets": {}}
    base = {"producer": PRODUCER, "schemaURL": RUN_EVENT_SCHEMA, "job": job,
            "inputs": [_dataset(n) for n in inputs], "outputs": [_dataset(n) for n in outputs]}
    events = [dict(base, eventType="START", eventTime=run["time"], run={"runId": run_uuid, "facets": facets})]
    state = OPENLINEAGE_STATE.get(run.get("status") or "", "OTHER")
    if state not in ("START", "RUNNING") and run.get("status_time"):
        events.append(dict(base, eventType=state, eventTime=run["status_time"],
                           run={"runId": run_uuid, "facets": facets}))
    return events
