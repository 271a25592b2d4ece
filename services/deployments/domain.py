"""Deployment and environment aggregates as pure functions: commands check state and return one
event (type, data); ``evolve_*`` folds an event into state. No I/O here.

Aggregates (both project-scoped):
- deployment (id = deployment name): which model version serves in which environment, whether it
  follows an alias, replicas, sample rate, batching, traffic split, the replicas' reports;
- environment (id = environment name): only whether it is protected. An environment with no
  events is protected when its name is in ``PROTECTED_BY_DEFAULT`` (``prod``).

A deployment that follows an alias remembers the alias version it last followed
(``alias_version``): it moves when the alias moves, not whenever the two differ, so a rollback
holds until the alias moves again instead of being undone at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import AlreadyExists, Conflict, EventOutOfOrder, InvalidInput, NotFound

State = dict[str, Any] | None

PROTECTED_BY_DEFAULT = frozenset({"prod"})
MAX_REPLICAS = 256
REPLICA_STATES = ("started", "stopped", "failed")
WHY = ("alias_moved", "rollback", "manual")


@dataclass(frozen=True)
class ModelRef:
    """What the read model knows of the model a deployment names, resolved before deciding:
    its id, the versions it has and the version the alias points at (when following one)."""

    name: str
    model_id: str
    versions: frozenset[int]
    alias_version: int | None = None


# --- environment aggregate ---------------------------------------------------------------------

def is_protected(state: State, environment: str) -> bool:
    if state is None:
        return environment in PROTECTED_BY_DEFAULT
    return bool(state["protected"])


def set_protected(state: State, *, environment: str, protected: bool) -> Decision:
    if is_protected(state, environment) == protected:
        return None
    return ("environment.protected" if protected else "environment.unprotected"), {"environment": environment}


def evolve_environment(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"protected": event_type == "environment.protected"}


# --- deployment aggregate ----------------------------------------------------------------------

def _check_replicas(replicas: int) -> int:
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= MAX_REPLICAS:
        raise InvalidInput(f"replicas must be a whole number from 0 to {MAX_REPLICAS}, not {replicas!r}",
                           details={"field": "replicas"})
    return replicas


def _check_version(model: ModelRef, version: int, field: str) -> int:
    if version not in model.versions:
        latest = max(model.versions, default=0)
        hint = f"latest is {latest}" if latest else "it has no versions yet"
        raise NotFound(f"model {model.name!r} has no version {version}; {hint}", details={"field": field})
    return version


def _check_batching(batching: dict[str, Any] | None) -> dict[str, Any] | None:
    if batching is None:
        return None
    max_batch, max_wait = batching.get("max_batch"), batching.get("max_wait_ms")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or not 1 <= max_batch <= 4096:
        raise InvalidInput("batching.max_batch must be a whole number from 1 to 4096",
                           details={"field": "batching.max_batch"})
    if isinstance(max_wait, bool) or not isinstance(max_wait, int | float) or not 0 <= max_wait <= 10_000:
        raise InvalidInput("batching.max_wait_ms must be a number of milliseconds from 0 to 10000",
                           details={"field": "batching.max_wait_ms"})
    return {"max_batch": max_batch, "max_wait_ms": float(max_wait)}


def create_deployment(state: State, *, name: str, environment: str, model: ModelRef, follows: str | None,
                      version: int | None, replicas: int, sample_rate: float,
                      batching: dict[str, Any] | None, public: bool) -> Decision:
    """Deploy ``model`` following alias ``follows`` or pinned at ``version`` (exactly one). A
    deleted deployment's name may be used again: it starts a new life on the same subject."""
    if state is not None and not state["deleted"]:
        raise AlreadyExists(f"deployment {name!r} already exists; change it (version, scale, split) or delete it first")
    if (follows is None) == (version is None):
        raise InvalidInput("give exactly one of follows (an alias) or version (a pinned version)",
                           details={"field": "follows"})
    if follows is not None:
        if model.alias_version is None:
            raise NotFound(f"model {model.name!r} has no alias {follows!r}; set it first or pin a version",
                           details={"field": "follows"})
        version = model.alias_version
    assert version is not None
    _check_version(model, version, "version")
    if not isinstance(sample_rate, int | float) or isinstance(sample_rate, bool) or not 0.0 <= sample_rate <= 1.0:
        raise InvalidInput(f"sample_rate must be a fraction from 0 to 1, not {sample_rate!r}",
                           details={"field": "sample_rate"})
    return "deployment.created", {
        "environment": environment, "model": model.name, "model_id": model.model_id, "follows": follows,
        "version": version, "replicas": _check_replicas(replicas), "sample_rate": float(sample_rate),
        "batching": _check_batching(batching), "public": bool(public),
    }


def live(state: State, name: str) -> dict[str, Any]:
    """The deployment's state, or NotFound for one that never existed or was deleted."""
    if state is None or state["deleted"]:
        raise NotFound(f"deployment {name!r} does not exist")
    return state


def change_version(state: State, *, name: str, model: ModelRef, version: int) -> Decision:
    current = live(state, name)
    _check_version(model, version, "version")
    if current["version"] == version:
        return None
    return "deployment.version_changed", {"from": current["version"], "to": version, "why": "manual",
                                          "model_id": current["model_id"]}


def rollback(state: State, *, name: str) -> Decision:
    """Back to the version that ran before the current one; a second rollback goes back again
    (the history is the deployment's record, not a stack that a rollback pops)."""
    current = live(state, name)
    previous = current["previous_version"]
    if previous is None:
        raise Conflict(f"deployment {name!r} has run only version {current['version']}: there is nothing to roll back to")
    return "deployment.version_changed", {"from": current["version"], "to": previous, "why": "rollback",
                                          "model_id": current["model_id"]}


def follow_alias(state: State, *, name: str, alias_version: int | None) -> Decision:
    """The alias the deployment follows points at ``alias_version`` now: move with it when it has
    moved since the deployment last followed it. A no-op when it has not moved, when it was
    removed (the deployment keeps serving), or when the deployment runs that version already."""
    if state is None or state["deleted"] or state["follows"] is None or alias_version is None:
        return None
    if alias_version == state["alias_version"] or alias_version == state["version"]:
        return None
    return "deployment.version_changed", {"from": state["version"], "to": alias_version, "why": "alias_moved",
                                          "model_id": state["model_id"]}


def scale(state: State, *, name: str, replicas: int) -> Decision:
    current = live(state, name)
    if current["replicas"] == _check_replicas(replicas):
        return None
    return "deployment.scaled", {"from": current["replicas"], "replicas": replicas}


def split_traffic(state: State, *, name: str, model: ModelRef, canary: dict[str, Any] | None,
                  shadow: dict[str, Any] | None) -> Decision:
    """A canary (another version answers ``percent`` of requests), a shadow (another version gets
    a copy of every request, its answers discarded), both, or neither (clear)."""
    current = live(state, name)
    if canary is not None:
        percent = canary.get("percent")
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 < percent < 100:
            raise InvalidInput("canary.percent must be between 0 and 100 (exclusive)",
                               details={"field": "canary.percent"})
        canary = {"version": _check_version(model, canary.get("version"), "canary.version"),  # type: ignore[arg-type]
                  "percent": float(percent)}
        if canary["version"] == current["version"]:
            raise InvalidInput(f"the canary must be another version than the one serving ({current['version']})",
                               details={"field": "canary.version"})
    if shadow is not None:
        shadow = {"version": _check_version(model, shadow.get("version"), "shadow.version")}  # type: ignore[arg-type]
        if shadow["version"] == current["version"]:
            raise InvalidInput(f"the shadow must be another version than the one serving ({current['version']})",
                               details={"field": "shadow.version"})
    traffic = {"canary": canary, "shadow": shadow}
    if traffic == current["traffic"]:
        return None
    return "deployment.traffic_split", traffic


def report_replica(state: State, *, name: str, replica_id: str, url: str, version: int, status: str,
                   reason: str, managed: bool = False) -> Decision:
    """A replica says it started (serving ``version`` at ``url``), stopped or failed; a report
    that repeats the replica's last one appends nothing. ``managed``: the replica is a job of the
    deployment's replica set (so the service can tell when its job ended without a word)."""
    current = live(state, name)
    if status not in REPLICA_STATES:
        raise InvalidInput(f"state must be one of {', '.join(REPLICA_STATES)}, not {status!r}",
                           details={"field": "state"})
    report = {"url": url, "version": version, "state": status}
    seen = current["replicas_seen"].get(replica_id)
    if seen is not None and {k: seen.get(k) for k in report} == report:
        return None
    data: dict[str, Any] = {"replica_id": replica_id, "url": url, "version": version, "reason": reason}
    if managed:
        data["managed"] = True
    return f"deployment.replica_{status}", data


def delete(state: State, *, name: str) -> Decision:
    live(state, name)
    return "deployment.deleted", {}


def evolve_deployment(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "deployment.created":
        return {"environment": data["environment"], "model": data["model"], "model_id": data["model_id"],
                "follows": data["follows"], "version": data["version"], "alias_version": data["version"],
                "previous_version": None, "replicas": data["replicas"], "sample_rate": data["sample_rate"],
                "batching": data["batching"], "public": data["public"],
                "traffic": {"canary": None, "shadow": None}, "replicas_seen": {}, "deleted": False}
    if state is None:
        raise EventOutOfOrder(f"{event_type} for a deployment that does not exist: no deployment.created came before it")
    if event_type == "deployment.version_changed":
        state["previous_version"], state["version"] = data["from"], data["to"]
        if data["why"] == "alias_moved":
            state["alias_version"] = data["to"]
        for kind in ("canary", "shadow"):  # a split against the new version would be a split of one
            if (state["traffic"].get(kind) or {}).get("version") == data["to"]:
                state["traffic"][kind] = None
    elif event_type == "deployment.scaled":
        state["replicas"] = data["replicas"]
    elif event_type == "deployment.traffic_split":
        state["traffic"] = {"canary": data["canary"], "shadow": data["shadow"]}
    elif event_type.startswith("deployment.replica_"):
        seen = {"url": data["url"], "version": data["version"],
                "state": event_type.removeprefix("deployment.replica_")}
        if data.get("managed"):
            seen["managed"] = True
        state["replicas_seen"][data["replica_id"]] = seen
    elif event_type == "deployment.deleted":
        state["deleted"] = True
    return state


EVOLVERS = {"deployment": evolve_deployment, "environment": evolve_environment}
