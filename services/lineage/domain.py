"""The event -> graph mapping, pure: one small handler per event type turns an event of record
into nodes and edges (and the few changes to them: an alias moving, a model renamed, a run
finishing). Nothing here touches storage; ``projection.py`` applies what the handlers ask for.

Edges point downstream, from what was used or produced to what depends on it, so "upstream of
X" walks edges backwards and "impact of X" walks them forwards. Node keys are internal and
stable (models by id, not by their renamable name); ``refs.py`` turns user references such as
``dataset:reviews@v3`` into keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cairn.kernel.envelope import Event, embedded_record

# Node kinds and edge types (docs/lineage.md has the table).
NODE_KINDS = ("dataset", "dataset_version", "blob", "run", "model", "model_version", "alias", "commit",
              "environment", "job", "sweep", "deployment", "profile",
              "pipeline_run", "trace", "logged_model")  # new kinds go last: codes are stored
USED = "used"                # dataset_version -> run, dataset_version -> job: the run read it
PRODUCED = "produced"        # run -> blob (a logged artifact), run -> model_version (registered from it),
#                              run -> trace, run -> logged_model (its source run), logged_model -> blob (its own files)
CONTENT_OF = "content_of"    # blob -> dataset_version / model_version: the version's bytes (manifest)
VERSION_OF = "version_of"    # dataset_version -> dataset, model_version -> model (not walked)
PROMOTED_TO = "promoted_to"  # model_version -> alias, while the alias points at it
RAN_WITH = "ran_with"        # commit -> run, environment -> run, commit -> pipeline_run
RAN_IN = "ran_in"            # job -> run: the run is the job's execution
PART_OF = "part_of"          # sweep -> job / run: a trial of the sweep; pipeline_run -> job / run: a step
DEPLOYED_AS = "deployed_as"  # model_version / alias -> deployment
SUMMARISED_AS = "summarised_as"  # dataset_version / run -> profile: the monitor's column statistics of it
EDGE_TYPES = (USED, PRODUCED, CONTENT_OF, VERSION_OF, PROMOTED_TO, RAN_WITH, RAN_IN, PART_OF, DEPLOYED_AS,
              SUMMARISED_AS)
STRUCTURAL = (VERSION_OF,)
CLOSABLE = (PROMOTED_TO, DEPLOYED_AS)  # edges that end when what they point at moves on  # shown in graphs, not followed by upstream/impact walks


KIND_CODES = {kind: code for code, kind in enumerate(NODE_KINDS, start=1)}
_HASH_BITS = 56


def node_id(key: str) -> int:
    """A node's 64-bit id: its kind in the top byte, then 56 bits of a hash of its key, so a
    rebuild gives every node the same id and a reader knows a node's kind from its id alone."""
    code = KIND_CODES[key.split(":", 1)[0]]
    low = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=7).digest(), "big")
    return (code << _HASH_BITS) | low


def kind_of(nid: int) -> str:
    return NODE_KINDS[(nid >> _HASH_BITS) - 1]


@dataclass(frozen=True)
class NodeSpec:
    """A node an event mentions. ``name`` is the display name (for versions and aliases, the
    container's name at the time: readers take the container's current name through ``parent``)."""

    key: str
    kind: str
    project: str | None
    name: str
    version: str | None = None
    parent: str | None = None
    title: str | None = None


class GraphChanges(Protocol):
    """What a handler may ask for; the projection's batch implements it."""

    def node(self, spec: NodeSpec, event: Event) -> int: ...

    def edge(self, src: int, dst: int, edge_type: str, event: Event, label: str | None = None) -> None: ...

    def close_edges_into(self, dst: int, edge_type: str, event: Event) -> None: ...

    def rename(self, nid: int, name: str) -> None: ...

    def set_status(self, nid: int, status: str, event: Event) -> None: ...


Handler = Callable[[GraphChanges, Event], None]


@dataclass
class EventMapping:
    """Handlers by event type, filled with ``maps``; ``handler_for`` is None for types the graph
    does not use (they are counted, not applied)."""

    handlers: dict[str, Handler] = field(default_factory=dict)

    def maps(self, *event_types: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            for event_type in event_types:
                self.handlers[event_type] = fn
            return fn
        return register

    def handler_for(self, event_type: str) -> Handler | None:
        return self.handlers.get(event_type)


MAPPING = EventMapping()
_LOGGED_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")
_RUN_ID = re.compile(r"[0-9a-f]{32}")
maps = MAPPING.maps


# --- node constructors -------------------------------------------------------------------------

def dataset(project: str, name: str) -> NodeSpec:
    return NodeSpec(f"dataset:{project}/{name}", "dataset", project, name)


def dataset_version(project: str, name: str, version: int) -> NodeSpec:
    return NodeSpec(f"dataset_version:{project}/{name}@v{version}", "dataset_version", project, name,
                    f"v{version}", parent=f"dataset:{project}/{name}")


def blob(digest: str) -> NodeSpec:
    return NodeSpec(f"blob:{digest}", "blob", None, digest)  # shared by content across projects


def run(project: str, run_id: str, title: str | None = None) -> NodeSpec:
    return NodeSpec(f"run:{project}/{run_id}", "run", project, run_id, title=title)


def model(project: str, model_id: str, name: str | None = None) -> NodeSpec:
    return NodeSpec(f"model:{project}/{model_id}", "model", project, name or model_id)


def logged_model(project: str, model_id: str, name: str | None = None) -> NodeSpec:
    """An MLflow 3 logged model (the registry's ``logged_model`` record, id ``m-<32 hex>``)."""
    return NodeSpec(f"logged_model:{project}/{model_id}", "logged_model", project, model_id, title=name)


def model_version(project: str, model_id: str, version: int) -> NodeSpec:
    return NodeSpec(f"model_version:{project}/{model_id}@v{version}", "model_version", project, model_id,
                    f"v{version}", parent=f"model:{project}/{model_id}")


def alias(project: str, model_id: str, name: str) -> NodeSpec:
    return NodeSpec(f"alias:{project}/{model_id}@{name}", "alias", project, model_id, name,
                    parent=f"model:{project}/{model_id}")


def commit(sha: str, repository: str | None = None) -> NodeSpec:
    return NodeSpec(f"commit:{sha}", "commit", None, sha, title=repository)


def environment(digest: str) -> NodeSpec:
    return NodeSpec(f"environment:{digest}", "environment", None, digest)


def job(project: str, job_id: str, title: str | None = None) -> NodeSpec:
    return NodeSpec(f"job:{project}/{job_id}", "job", project, job_id, title=title)


def sweep(project: str, sweep_id: str, title: str | None = None) -> NodeSpec:
    return NodeSpec(f"sweep:{project}/{sweep_id}", "sweep", project, sweep_id, title=title)


def deployment(project: str, deployment_id: str, title: str | None = None) -> NodeSpec:
    return NodeSpec(f"deployment:{project}/{deployment_id}", "deployment", project, deployment_id, title=title)


def profile(project: str, digest: str) -> NodeSpec:
    return NodeSpec(f"profile:{project}/{digest}", "profile", project, digest)


def pipeline_run(project: str, run_id: str, title: str | None = None) -> NodeSpec:
    return NodeSpec(f"pipeline_run:{project}/{run_id}", "pipeline_run", project, run_id, title=title)


# --- artifacts events ----------------------------------------------------------------------------

@maps("dataset.version_created")
def _dataset_version_created(g: GraphChanges, e: Event) -> None:
    container = g.node(dataset(e.project, e.aggregate_id), e)
    version = g.node(dataset_version(e.project, e.aggregate_id, e.data["version"]), e)
    g.edge(version, container, VERSION_OF, e)
    g.edge(g.node(blob(e.data["manifest_digest"]), e), version, CONTENT_OF, e)


@maps("run.dataset_used")
def _dataset_used(g: GraphChanges, e: Event) -> None:
    version = g.node(dataset_version(e.project, e.data["dataset"], e.data["version"]), e)
    g.edge(version, g.node(run(e.project, e.aggregate_id), e), USED, e)


@maps("run.artifact_logged")
def _artifact_logged(g: GraphChanges, e: Event) -> None:
    # A run's output is linked by content: a dataset version or model version whose manifest or
    # file has this digest is downstream of the run through the blob (a derived dataset).
    # A logged model without a run keeps its files under its own id (an MLflow 3 logged model).
    owner = logged_model(e.project, e.aggregate_id) if _LOGGED_MODEL_ID.fullmatch(e.aggregate_id) \
        else run(e.project, e.aggregate_id)
    g.edge(g.node(owner, e), g.node(blob(e.data["digest"]), e), PRODUCED, e, label=e.data["name"])


# --- registry events -----------------------------------------------------------------------------

@maps("run.created")
def _run_created(g: GraphChanges, e: Event) -> None:
    nid = g.node(run(e.project, e.aggregate_id, e.data.get("name") or None), e)
    g.set_status(nid, e.data.get("status", "running"), e)
    record = embedded_record(e)
    if record is not None:
        _environment_recorded(g, record)


@maps("run.started", "run.finished")
def _run_status(g: GraphChanges, e: Event) -> None:
    status = e.data.get("status") or ("running" if e.type == "run.started" else "finished")
    g.set_status(g.node(run(e.project, e.aggregate_id), e), status, e)


@maps("logged_model.created")
def _logged_model_created(g: GraphChanges, e: Event) -> None:
    # MLflow accepts any source_run_id; only a run id (32 hex) names a run that can be in the graph
    nid = g.node(logged_model(e.project, e.aggregate_id, e.data["name"]), e)
    source = e.data.get("source_run_id")
    if source and _RUN_ID.fullmatch(source):
        g.edge(g.node(run(e.project, source), e), nid, PRODUCED, e)


@maps("model.created")
def _model_created(g: GraphChanges, e: Event) -> None:
    # data.model_id, not aggregate_id: logs written before models had their own subjects carry
    # model.* on the project's subject
    g.node(model(e.project, e.data["model_id"], e.data["name"]), e)


@maps("model.updated")
def _model_updated(g: GraphChanges, e: Event) -> None:
    if e.data.get("name"):
        g.rename(g.node(model(e.project, e.data["model_id"], e.data["name"]), e), e.data["name"])


@maps("model_version.created")
def _model_version_created(g: GraphChanges, e: Event) -> None:
    container = g.node(model(e.project, e.aggregate_id), e)
    version = g.node(model_version(e.project, e.aggregate_id, e.data["version"]), e)
    g.edge(version, container, VERSION_OF, e)
    g.edge(g.node(run(e.project, e.data["run_id"]), e), version, PRODUCED, e)
    g.edge(g.node(blob(e.data["artifact_digest"]), e), version, CONTENT_OF, e)


@maps("model_version.alias_set")
def _alias_set(g: GraphChanges, e: Event) -> None:
    target = g.node(alias(e.project, e.aggregate_id, e.data["alias"]), e)
    g.close_edges_into(target, PROMOTED_TO, e)
    g.edge(g.node(model_version(e.project, e.aggregate_id, e.data["version"]), e), target, PROMOTED_TO, e)


@maps("model_version.alias_removed")
def _alias_removed(g: GraphChanges, e: Event) -> None:
    g.close_edges_into(g.node(alias(e.project, e.aggregate_id, e.data["alias"]), e), PROMOTED_TO, e)


# --- events other services are adding (scheduler, environment record, deployments) --------------
# Field names follow issue #6; every lookup is tolerant so a missing field links nothing.

def _get(data: dict[str, Any], *paths: str) -> Any:
    for path in paths:
        value: Any = data
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value:
            return value
    return None


@maps("run.environment_recorded")
def _environment_recorded(g: GraphChanges, e: Event) -> None:
    """code.commit -> a commit node; code.archive_digest (the code snapshot) -> its blob; the Python
    environment (interpreter version and installed packages, not the hardware) -> an environment
    node named by a hash of both, so runs with the same packages share it."""
    target = g.node(run(e.project, e.aggregate_id), e)
    sha = _get(e.data, "code.commit", "git.commit", "commit")
    if isinstance(sha, str):
        g.edge(g.node(commit(sha, _get(e.data, "code.remote", "git.remote")), e), target, RAN_WITH, e)
    archive = _get(e.data, "code.archive_digest")
    if isinstance(archive, str):
        g.edge(g.node(blob(archive), e), target, RAN_WITH, e, label="code")
    env = _get(e.data, "environment_digest")
    packages = _get(e.data, "environment.packages", "packages")
    if env is None and packages:
        python = _get(e.data, "environment.python.version")
        env = hashlib.sha256(json.dumps({"python": python, "packages": packages}, sort_keys=True).encode()).hexdigest()
    if isinstance(env, str):
        g.edge(g.node(environment(env), e), target, RAN_WITH, e)


@maps("job.submitted", "job.started")
def _job(g: GraphChanges, e: Event) -> None:
    nid = g.node(job(e.project, e.aggregate_id, _get(e.data, "name", "spec.name")), e)
    run_id = _get(e.data, "run_id")
    run_nid = g.node(run(e.project, run_id), e) if isinstance(run_id, str) else None
    if run_nid is not None:
        g.edge(nid, run_nid, RAN_IN, e)
    sweep_id = _get(e.data, "sweep_id")
    if isinstance(sweep_id, str):
        g.edge(g.node(sweep(e.project, sweep_id), e), nid, PART_OF, e)
    # a pipeline's job step: the pipelines service names its run in the job's environment
    pipeline_run_id = _get(e.data, "spec.env.CAIRN_PIPELINE_RUN")
    if isinstance(pipeline_run_id, str):
        parent = g.node(pipeline_run(e.project, pipeline_run_id), e)
        step = _get(e.data, "spec.env.CAIRN_PIPELINE_STEP")
        label = step if isinstance(step, str) else None
        g.edge(parent, nid, PART_OF, e, label=label)
        if run_nid is not None:
            g.edge(parent, run_nid, PART_OF, e, label=label)


@maps("sweep.created")
def _sweep_created(g: GraphChanges, e: Event) -> None:
    g.node(sweep(e.project, e.aggregate_id, _get(e.data, "name")), e)


@maps("sweep.trial_started")
def _sweep_trial(g: GraphChanges, e: Event) -> None:
    """A trial's job and run are part of the sweep; the run is the job's execution."""
    nid = g.node(sweep(e.project, e.aggregate_id), e)
    job_id, run_id = _get(e.data, "job_id"), _get(e.data, "run_id")
    job_nid = g.node(job(e.project, job_id), e) if isinstance(job_id, str) else None
    run_nid = g.node(run(e.project, run_id), e) if isinstance(run_id, str) else None
    for member in (job_nid, run_nid):
        if member is not None:
            g.edge(nid, member, PART_OF, e)
    if job_nid is not None and run_nid is not None:
        g.edge(job_nid, run_nid, RAN_IN, e)


# --- deployments ---------------------------------------------------------------------------------

@maps("deployment.created", "deployment.version_changed")
def _deployment_version(g: GraphChanges, e: Event) -> None:
    """model@version -> deployment while that version serves it; a version change closes the
    previous edge (the graph as of an earlier time shows the version that served then)."""
    target = g.node(deployment(e.project, e.aggregate_id, _get(e.data, "environment")), e)
    model_id, version = _get(e.data, "model_id"), _get(e.data, "version", "to")
    if not isinstance(model_id, str) or not isinstance(version, int):
        return
    g.close_edges_into(target, DEPLOYED_AS, e)
    g.edge(g.node(model_version(e.project, model_id, version), e), target, DEPLOYED_AS, e)


@maps("deployment.deleted")
def _deployment_deleted(g: GraphChanges, e: Event) -> None:
    target = g.node(deployment(e.project, e.aggregate_id), e)
    g.close_edges_into(target, DEPLOYED_AS, e)
    g.set_status(target, "deleted", e)


# --- monitor -------------------------------------------------------------------------------------

@maps("profile.registered")
def _profile_registered(g: GraphChanges, e: Event) -> None:
    """dataset@version -> profile, or run -> profile: what the registered profile summarises
    (a profile registered without a source is a node of its own)."""
    node = g.node(profile(e.project, e.data["digest"]), e)
    source = e.data.get("source") or {}
    if "dataset" in source and isinstance(source.get("version"), int):
        g.edge(g.node(dataset_version(e.project, source["dataset"], source["version"]), e), node, SUMMARISED_AS, e)
    elif "run" in source:
        g.edge(g.node(run(e.project, source["run"]), e), node, SUMMARISED_AS, e)


# --- pipelines -----------------------------------------------------------------------------------

@maps("pipeline_run.started")
def _pipeline_run_started(g: GraphChanges, e: Event) -> None:
    """commit -> pipeline run (the code it ran: the pushed commit, or the code snapshot's commit);
    the run's steps link in through their jobs (``_job``)."""
    nid = g.node(pipeline_run(e.project, e.aggregate_id, _get(e.data, "pipeline")), e)
    g.set_status(nid, "running", e)
    sha = _get(e.data, "trigger.commit", "code.commit")
    if isinstance(sha, str):
        repo = _get(e.data, "trigger.repo.full_name", "trigger.repo", "code.repo")
        g.edge(g.node(commit(sha, repo if isinstance(repo, str) else None), e), nid, RAN_WITH, e)
    archive = _get(e.data, "code.archive_digest")
    if isinstance(archive, str):
        g.edge(g.node(blob(archive), e), nid, RAN_WITH, e, label="code")


@maps("pipeline_run.finished")
def _pipeline_run_finished(g: GraphChanges, e: Event) -> None:
    g.set_status(g.node(pipeline_run(e.project, e.aggregate_id), e), str(e.data.get("outcome") or "finished"), e)
