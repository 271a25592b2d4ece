"""Registry aggregates as pure functions: commands check state and return one event (type, data);
``evolve`` folds an event into state. No I/O here.

Aggregates:
- project (id = project name): the project and its experiments;
- run (id = run id): status, params (immutable once set), tags, notes;
- model (id = model id): name, description, archived, tags, versions, aliases with history. A
  model's name is unique in its project, which no one model's state can tell: creating or renaming
  decides on the project's model names too (``ModelNames``, the registry's read model) under a
  guard on every model subject of the project (kernel/commands.py ``Guard``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import AlreadyExists, Conflict, EventOutOfOrder, InvalidInput, NotFound
from cairn.kernel.ids import (
    ALIAS_RE,
    DIGEST_RE,
    check_key,
    check_model_name,
    check_name,
    check_text,
)
from cairn.services.registry.run_record import evolve_record

State = dict[str, Any] | None

RUN_STATUSES_FINAL = ("finished", "failed", "killed")


# --- project aggregate -------------------------------------------------------------------------

def _project(state: State, project: str) -> dict[str, Any]:
    if state is None:
        raise NotFound(f"project {project!r} does not exist; create it first")
    return state


def create_project(state: State, *, name: str, description: str, default_experiment_id: str,
                   first_admin: str | None = None) -> Decision:
    """``first_admin`` is the creating user, made the project's admin by this same event (so the
    project never exists without someone who may see it); None for a site admin or a service."""
    if state is not None:
        raise AlreadyExists(f"project {name!r} already exists")
    return "project.created", {
        "name": name,
        "description": check_text(description, "description"),
        "default_experiment_id": default_experiment_id,
        "first_admin": first_admin,
    }


def ensure_project(state: State, *, name: str, default_experiment_id: str,
                   first_admin: str | None) -> Decision:
    """Create the project unless it exists (a run started in it creates it on first use)."""
    if state is not None:
        return None
    return create_project(state, name=name, description="", default_experiment_id=default_experiment_id,
                          first_admin=first_admin)


def ensure_experiment(state: State, *, project: str, experiment_id: str, name: str) -> Decision:
    """Create the experiment by name unless the project has one of that name already."""
    if name in _project(state, project)["experiment_names"]:
        return None
    return create_experiment(state, project=project, experiment_id=experiment_id, name=name, description="")


def update_project(state: State, *, project: str, description: str) -> Decision:
    current = _project(state, project)
    if current["description"] == description:
        return None
    return "project.updated", {"description": check_text(description, "description")}


def set_project_archived(state: State, *, project: str, archived: bool) -> Decision:
    current = _project(state, project)
    if current["archived"] == archived:
        return None
    return ("project.archived" if archived else "project.restored"), {}


def create_experiment(state: State, *, project: str, experiment_id: str, name: str, description: str) -> Decision:
    current = _project(state, project)
    check_name(name, "name")
    if name in current["experiment_names"]:
        raise AlreadyExists(f"experiment {name!r} already exists in project {project!r}")
    return "experiment.created", {
        "experiment_id": experiment_id, "name": name, "description": check_text(description, "description"),
    }


def _experiment(current: dict[str, Any], experiment_id: str) -> dict[str, Any]:
    experiment = current["experiments"].get(experiment_id)
    if experiment is None:
        raise NotFound(f"experiment {experiment_id!r} does not exist in project {current['name']!r}")
    return experiment


def update_experiment(state: State, *, project: str, experiment_id: str, name: str | None,
                      description: str | None) -> Decision:
    current = _project(state, project)
    experiment = _experiment(current, experiment_id)
    data: dict[str, Any] = {"experiment_id": experiment_id}
    if name is not None and name != experiment["name"]:
        check_name(name, "name")
        if name in current["experiment_names"]:
            raise AlreadyExists(f"experiment {name!r} already exists in project {project!r}")
        data["name"] = name
    if description is not None:
        data["description"] = check_text(description, "description")
    if len(data) == 1:
        return None
    return "experiment.updated", data


def set_experiment_archived(state: State, *, project: str, experiment_id: str, archived: bool) -> Decision:
    experiment = _experiment(_project(state, project), experiment_id)
    if experiment["archived"] == archived:
        return None
    return ("experiment.archived" if archived else "experiment.restored"), {"experiment_id": experiment_id}


def set_experiment_tag(state: State, *, project: str, experiment_id: str, key: str, value: str) -> Decision:
    _experiment(_project(state, project), experiment_id)
    check_key(key, "key")
    return "experiment.tag_set", {"experiment_id": experiment_id, "key": key,
                                  "value": check_text(value, "value")}


def delete_experiment_tag(state: State, *, project: str, experiment_id: str, key: str, present: bool) -> Decision:
    """``present``: whether the read model holds the tag (the project aggregate does not keep
    experiment tags); deleting a tag that is not there is a 404 naming it."""
    _experiment(_project(state, project), experiment_id)
    check_key(key, "key")
    if not present:
        raise NotFound(f"No tag with name: {key} in experiment {experiment_id!r}")
    return "experiment.tag_deleted", {"experiment_id": experiment_id, "key": key}


def evolve_project(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "project.created":
        return {"name": data["name"], "description": data["description"], "archived": False,
                "experiments": {data["default_experiment_id"]: {"name": "default", "archived": False}},
                "experiment_names": {"default": data["default_experiment_id"]}}
    if state is None:
        raise EventOutOfOrder(f"{event_type} for a project that does not exist: no project.created came before it")
    if event_type == "project.updated":
        state["description"] = data["description"]
    elif event_type in ("project.archived", "project.restored"):
        state["archived"] = event_type == "project.archived"
    elif event_type == "experiment.created":
        state["experiments"][data["experiment_id"]] = {"name": data["name"], "archived": False}
        state["experiment_names"][data["name"]] = data["experiment_id"]
    elif event_type == "experiment.updated" and "name" in data:
        experiment = state["experiments"][data["experiment_id"]]
        state["experiment_names"].pop(experiment["name"], None)
        experiment["name"] = data["name"]
        state["experiment_names"][data["name"]] = data["experiment_id"]
    elif event_type in ("experiment.archived", "experiment.restored"):
        state["experiments"][data["experiment_id"]]["archived"] = event_type == "experiment.archived"
    return state  # model.* of logs written before models had subjects of their own: see projection.py


# --- run aggregate -----------------------------------------------------------------------------

def _normalise_params(params: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in params.items():
        check_key(key, "param key")
        if isinstance(value, bool):
            value = str(value).lower()
        elif value is None:
            raise InvalidInput(f"param {key!r} has no value", details={"field": f"params.{key}"})
        out[key] = check_text(str(value), f"params.{key}")
    return out


def _normalise_tags(tags: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in tags.items():
        check_key(key, "tag key")
        out[key] = check_text(str(value), f"tags.{key}")
    return out


def create_run(state: State, *, run_id: str, experiment_id: str, name: str, params: dict[str, Any],
               tags: dict[str, Any], description: str, start: bool) -> Decision:
    if state is not None:
        raise AlreadyExists(f"run {run_id!r} already exists")
    return "run.created", {
        "experiment_id": experiment_id,
        "name": check_name(name, "name"),
        "params": _normalise_params(params),
        "tags": _normalise_tags(tags),
        "description": check_text(description, "description"),
        "status": "running" if start else "scheduled",
    }


def _run(state: State, run_id: str) -> dict[str, Any]:
    if state is None:
        raise NotFound(f"run {run_id!r} does not exist")
    return state


def start_run(state: State, *, run_id: str) -> Decision:
    run = _run(state, run_id)
    if run["status"] == "running":
        return None
    if run["status"] != "scheduled":
        raise Conflict(f"run {run_id!r} is {run['status']} and cannot start again")
    return "run.started", {}


def finish_run(state: State, *, run_id: str, status: str, message: str) -> Decision:
    run = _run(state, run_id)
    if status not in RUN_STATUSES_FINAL:
        raise InvalidInput(f"status must be one of {', '.join(RUN_STATUSES_FINAL)}, not {status!r}",
                           details={"field": "status"})
    if run["status"] == status:
        return None
    if run["status"] in RUN_STATUSES_FINAL:
        raise Conflict(f"run {run_id!r} already ended as {run['status']}")
    return "run.finished", {"status": status, "message": check_text(message, "message")}


def log_params(state: State, *, run_id: str, params: dict[str, Any]) -> Decision:
    run = _run(state, run_id)
    new = _normalise_params(params)
    if not new:
        raise InvalidInput("params must not be empty", details={"field": "params"})
    changed = {k: (run["params"][k], v) for k, v in new.items() if k in run["params"] and run["params"][k] != v}
    if changed:
        key, (old, value) = next(iter(sorted(changed.items())))
        raise Conflict(
            f"param {key!r} of run {run_id!r} is already {old!r}; params are immutable "
            f"(cannot set it to {value!r}); log a new param or start a new run",
            details={"field": f"params.{key}"})
    fresh = {k: v for k, v in new.items() if k not in run["params"]}
    if not fresh:
        return None
    return "run.params_logged", {"params": fresh}


def set_run_tag(state: State, *, run_id: str, key: str, value: str) -> Decision:
    run = _run(state, run_id)
    (key, value), = _normalise_tags({key: value}).items()
    if run["tags"].get(key) == value:
        return None
    return "run.tag_set", {"key": key, "value": value}


def delete_run_tag(state: State, *, run_id: str, key: str) -> Decision:
    run = _run(state, run_id)
    if key not in run["tags"]:
        raise NotFound(f"run {run_id!r} has no tag {key!r}")
    return "run.tag_deleted", {"key": key}


def update_run(state: State, *, run_id: str, name: str | None, description: str | None) -> Decision:
    run = _run(state, run_id)
    data: dict[str, Any] = {}
    if name is not None and name != run["name"]:
        data["name"] = check_name(name, "name")
    if description is not None and description != run["description"]:
        data["description"] = check_text(description, "description")
    if not data:
        return None
    return "run.updated", data


def set_run_archived(state: State, *, run_id: str, archived: bool) -> Decision:
    run = _run(state, run_id)
    if run["archived"] == archived:
        return None
    return ("run.archived" if archived else "run.restored"), {}


def evolve_run(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "run.created":
        created = {"name": data["name"], "status": data["status"], "params": dict(data["params"]),
                   "tags": dict(data["tags"]), "description": data["description"], "archived": False}
        if data.get("record"):  # v2: created with its first record
            evolve_record(created, data["record"])
        return created
    if state is None:
        raise EventOutOfOrder(f"{event_type} for a run that does not exist: no run.created came before it")
    if event_type == "run.started":
        state["status"] = "running"
    elif event_type == "run.finished":
        state["status"] = data["status"]
    elif event_type == "run.params_logged":
        state["params"].update(data["params"])
    elif event_type == "run.tag_set":
        state["tags"][data["key"]] = data["value"]
    elif event_type == "run.tag_deleted":
        state["tags"].pop(data["key"], None)
    elif event_type == "run.updated":
        state.update({k: data[k] for k in ("name", "description") if k in data})
    elif event_type in ("run.archived", "run.restored"):
        state["archived"] = event_type == "run.archived"
    elif event_type == "run.environment_recorded":
        evolve_record(state, data)
    return state


# --- model aggregate ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelNames:
    """What a model's creation or rename reads beyond the model: whether the project exists and
    the names its models have (name -> model id)."""

    project_exists: bool
    names: dict[str, str]


def _check_free(names: ModelNames, project: str, name: str) -> None:
    check_model_name(name)
    if name in names.names:
        raise AlreadyExists(f"model {name!r} already exists in project {project!r}; choose another name")


def create_model(state: State, names: ModelNames, *, project: str, model_id: str, name: str,
                 description: str) -> Decision:
    if not names.project_exists:
        raise NotFound(f"project {project!r} does not exist; create it first")
    if state is not None and "name" in state:
        raise AlreadyExists(f"model {model_id!r} already exists")
    _check_free(names, project, name)
    return "model.created", {"model_id": model_id, "name": name,
                             "description": check_text(description, "description")}


def _model(state: State, project: str, model_id: str) -> dict[str, Any]:
    if state is None or "name" not in state:  # versions alone never make a model
        raise NotFound(f"model {model_id!r} does not exist in project {project!r}")
    return state


def update_model(state: State, names: ModelNames, *, project: str, model_id: str, name: str | None,
                 description: str | None) -> Decision:
    model = _model(state, project, model_id)
    data: dict[str, Any] = {"model_id": model_id}
    if name is not None and name != model["name"]:
        _check_free(names, project, name)
        data["name"] = name
    if description is not None:
        data["description"] = check_text(description, "description")
    if len(data) == 1:
        return None
    return "model.updated", data


def set_model_archived(state: State, *, project: str, model_id: str, archived: bool) -> Decision:
    model = _model(state, project, model_id)
    if model["archived"] == archived:
        return None
    return ("model.archived" if archived else "model.restored"), {"model_id": model_id}


def set_model_tag(state: State, *, project: str, model_id: str, key: str, value: str) -> Decision:
    _model(state, project, model_id)
    check_key(key, "key")
    return "model.tag_set", {"model_id": model_id, "key": key, "value": check_text(value, "value")}


def create_model_version(state: State, *, run_id: str, artifact_digest: str, description: str) -> Decision:
    if not isinstance(artifact_digest, str) or not DIGEST_RE.match(artifact_digest):
        raise InvalidInput("artifact_digest must be a BLAKE3 digest, 64 lowercase hex characters: the model "
                           "folder's manifest digest, which run.log_model(...) uploads and registers for you "
                           "(or the 'digest' that POST /api/v1/artifacts/projects/<p>/manifests answers)",
                           details={"field": "artifact_digest"})
    version = (state or {}).get("latest_version", 0) + 1
    return "model_version.created", {"version": version, "run_id": run_id,
                                     "artifact_digest": artifact_digest,
                                     "description": check_text(description, "description")}


def _version(state: State, model: str, version: int) -> dict[str, Any]:
    entry = (state or {}).get("versions", {}).get(str(version))
    if entry is None:
        latest = (state or {}).get("latest_version", 0)
        hint = f"latest is {latest}" if latest else "it has no versions yet"
        raise NotFound(f"model {model!r} has no version {version}; {hint}")
    return entry


def update_model_version(state: State, *, model: str, version: int, description: str) -> Decision:
    _version(state, model, version)
    return "model_version.updated", {"version": version, "description": check_text(description, "description")}


def set_model_version_archived(state: State, *, model: str, version: int, archived: bool) -> Decision:
    entry = _version(state, model, version)
    if entry["archived"] == archived:
        return None
    return ("model_version.archived" if archived else "model_version.restored"), {"version": version}


def set_model_version_tag(state: State, *, model: str, version: int, key: str, value: str) -> Decision:
    _version(state, model, version)
    check_key(key, "key")
    return "model_version.tag_set", {"version": version, "key": key, "value": check_text(value, "value")}


def set_alias(state: State, *, model: str, alias: str, version: int) -> Decision:
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
        raise InvalidInput(f"alias {alias!r} is not valid: a letter, then up to 63 letters, digits, '-' or '_'",
                           details={"field": "alias"})
    entry = _version(state, model, version)
    if entry["archived"]:
        raise Conflict(f"version {version} of model {model!r} is archived; restore it before giving it an alias")
    previous = (state or {}).get("aliases", {}).get(alias)
    if previous == version:
        return None
    return "model_version.alias_set", {"alias": alias, "version": version, "previous_version": previous}


def remove_alias(state: State, *, model: str, alias: str) -> Decision:
    version = (state or {}).get("aliases", {}).get(alias)
    if version is None:
        raise NotFound(f"model {model!r} has no alias {alias!r}")
    return "model_version.alias_removed", {"alias": alias, "version": version}


def evolve_model(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    state = state or {"latest_version": 0, "versions": {}, "aliases": {}}
    if event_type == "model.created":
        state.update(name=data["name"], description=data["description"], archived=False, tags={})
    elif event_type == "model.updated":
        state.update({k: data[k] for k in ("name", "description") if k in data})
    elif event_type in ("model.archived", "model.restored"):
        state["archived"] = event_type == "model.archived"
    elif event_type == "model.tag_set":
        state.setdefault("tags", {})[data["key"]] = data["value"]
    elif event_type == "model.tag_deleted":
        state.setdefault("tags", {}).pop(data["key"], None)
    elif event_type in ("model_version.created", "model_version.created_without_files"):
        state["latest_version"] = data["version"]
        state["versions"][str(data["version"])] = {"archived": False}
    elif event_type in ("model_version.archived", "model_version.restored"):
        state["versions"][str(data["version"])]["archived"] = event_type == "model_version.archived"
    elif event_type == "model_version.alias_set":
        state["aliases"][data["alias"]] = data["version"]
    elif event_type == "model_version.alias_removed":
        state["aliases"].pop(data["alias"], None)
    return state


EVOLVERS = {"project": evolve_project, "run": evolve_run, "model": evolve_model}
