"""MLflow experiments = Cairn experiments of the call's project.

MLflow's default experiment (id ``"0"``, named ``Default``) is the project's experiment that Cairn
names ``default``: the layer answers it as ``"0"``/``Default`` and reads ``"0"``/``Default`` as it,
so MLflow clients see what they expect while Cairn's SDK and CLI keep their name. Delete/restore
are archive/restore. A client's ``artifact_location`` is kept (a hidden tag) and answered back;
the runs' artifacts still go to Cairn's content-addressed store.
"""

from __future__ import annotations

import re
from typing import Any

from cairn.services.gateway.mlflow.calls import (
    ARTIFACT_SCHEME,
    HIDDEN_TAG_PREFIX,
    Call,
    endpoint,
    key_values,
    millis,
)
from cairn.services.gateway.mlflow.errors import MlflowError, invalid, not_found
from cairn.services.gateway.mlflow.identifiers import EXPERIMENT_ID, TAG_KEY
from cairn.services.gateway.mlflow.paging import page, page_token_offset
from cairn.services.gateway.mlflow.validation import (
    EXPERIMENTS_MAX_RESULTS,
    array,
    invalid_value,
    string,
)

DEFAULT_EXPERIMENT_ID = "0"
CAIRN_DEFAULT_NAME = "default"
MLFLOW_DEFAULT_NAME = "Default"
ARTIFACT_LOCATION_TAG = f"{HIDDEN_TAG_PREFIX}artifact_location"
VIEW_TYPES = {"ACTIVE_ONLY": (False,), "DELETED_ONLY": (True,), "ALL": (False, True),
              "1": (False,), "2": (True,), "3": (False, True)}
# project -> Cairn id of its default experiment (an id never changes; one lookup per project)
_default_ids: dict[str, str] = {}


async def default_experiment_id(call: Call) -> str:
    """Cairn's id of the project's default experiment (looked up once per project)."""
    known = _default_ids.get(call.project)
    if known is not None:
        return known
    found = (await call.registry("GET", "/experiments", params={"name": CAIRN_DEFAULT_NAME}))["experiments"]
    if not found:
        raise not_found(f"project {call.project!r} has no experiment named {CAIRN_DEFAULT_NAME!r}")
    _default_ids[call.project] = str(found[0]["id"])
    return _default_ids[call.project]


def public_experiment_id(call: Call, cairn_id: str) -> str:
    """The id MLflow clients see: ``"0"`` for the project's default experiment."""
    return DEFAULT_EXPERIMENT_ID if _default_ids.get(call.project) == cairn_id else cairn_id


def public_name(name: str) -> str:
    return MLFLOW_DEFAULT_NAME if name == CAIRN_DEFAULT_NAME else name


def cairn_name(name: str) -> str:
    return CAIRN_DEFAULT_NAME if name == MLFLOW_DEFAULT_NAME else name


async def experiment_id_of(call: Call, experiment_id: Any, parameter: str = "experiment_id") -> str:
    """Cairn's id for an MLflow experiment id (``"0"`` is the project's ``default``), checked."""
    if isinstance(experiment_id, int) and not isinstance(experiment_id, bool):
        experiment_id = str(experiment_id)  # some clients send the default experiment as the number 0
    if experiment_id == DEFAULT_EXPERIMENT_ID:
        return await default_experiment_id(call)
    return EXPERIMENT_ID.check(experiment_id, parameter)


def experiment_path(cairn_id: str, rest: str = "") -> str:
    """``/experiments/<id><rest>`` with the id checked and escaped."""
    return f"/experiments/{EXPERIMENT_ID.segment(cairn_id, 'experiment_id')}{rest}"


def experiment_json(call: Call, e: dict[str, Any]) -> dict[str, Any]:
    tags = e.get("tags", {})
    if e["name"] == CAIRN_DEFAULT_NAME:
        _default_ids.setdefault(call.project, str(e["id"]))
    return {
        "experiment_id": public_experiment_id(call, e["id"]), "name": public_name(e["name"]),
        "artifact_location": tags.get(ARTIFACT_LOCATION_TAG) or f"{ARTIFACT_SCHEME}/{call.project}/{e['id']}",
        "lifecycle_stage": "deleted" if e["archived"] else "active",
        "creation_time": millis(e["created_at"]), "last_update_time": millis(e["updated_at"]),
        "tags": [{"key": k, "value": v} for k, v in sorted(tags.items()) if not k.startswith(HIDDEN_TAG_PREFIX)],
    }


async def get_experiment(call: Call, experiment_id: Any) -> dict[str, Any]:
    cairn_id = await experiment_id_of(call, experiment_id)
    return await call.registry("GET", experiment_path(cairn_id))


@endpoint("POST", "experiments/create", role="editor")
async def create(call: Call) -> dict[str, Any]:
    name = string(call, "name", required=True)
    location = string(call, "artifact_location")
    raw_tags = array(call, "tags")
    assert name is not None
    if name == MLFLOW_DEFAULT_NAME:
        raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists.")
    if location is not None and location.startswith("runs:"):
        raise invalid(f"Artifact location cannot be a runs:/ URI. Given: '{location}'")
    tags = {TAG_KEY.segment(k, "tags.key"): v for k, v in key_values(raw_tags, "tag").items()}
    if location:
        tags[ARTIFACT_LOCATION_TAG] = location
    created = await call.registry("POST", "/experiments", body={"name": name})
    for key, value in tags.items():
        await call.registry("PUT", experiment_path(created["id"], f"/tags/{key}"), body={"value": value})
    return {"experiment_id": created["id"]}


@endpoint("GET", "experiments/get")
async def get(call: Call) -> dict[str, Any]:
    return {"experiment": experiment_json(call, await get_experiment(call, call.arg("experiment_id", required=True)))}


@endpoint("GET", "experiments/get-by-name")
async def get_by_name(call: Call) -> dict[str, Any]:
    name = string(call, "experiment_name", required=True)
    assert name is not None
    found = (await call.registry("GET", "/experiments", params={"name": cairn_name(name)}))["experiments"]
    if not found:
        raise not_found(f"Could not find experiment with name '{name}'")
    return {"experiment": experiment_json(call, found[0])}


_ORDER_KEYS = {"name": "name", "experiment_id": "id", "creation_time": "created_at",
               "last_update_time": "updated_at"}


@endpoint("POST", "experiments/search")
@endpoint("GET", "experiments/search")
async def search(call: Call) -> dict[str, Any]:
    """MLflow's order: the requested keys, then creation_time DESC, then experiment_id ASC (so
    pages over equal keys are stable); ``max_results`` over MLflow's limit is refused."""
    view = str(call.arg("view_type", "ACTIVE_ONLY"))
    wanted = VIEW_TYPES.get(view)
    if wanted is None:
        raise invalid(f"view_type must be ACTIVE_ONLY, DELETED_ONLY or ALL, not {view!r}")
    size = call.int_arg("max_results", 1000) or 1000
    if size < 1 or size > EXPERIMENTS_MAX_RESULTS:
        raise invalid_value("max_results", size, f"It must be at most {EXPERIMENTS_MAX_RESULTS}")
    await default_experiment_id(call)
    listed = (await call.registry("GET", "/experiments", params={"include_archived": "true"}))["experiments"]
    shown = [{**e, "name": public_name(e["name"])} for e in listed]
    matches = [e for e in shown if e["archived"] in wanted and _matches(e, call.arg("filter"))]
    matches.sort(key=lambda e: e["id"])
    matches.sort(key=lambda e: e["created_at"], reverse=True)
    for item in reversed(call.list_arg("order_by")):
        field, _, direction = str(item).strip().partition(" ")
        key = _ORDER_KEYS.get(re.sub(r"^attr(?:ibutes?)?\.", "", field))
        if key is None:
            raise invalid(f"cannot order experiments by {field!r}; use name, experiment_id, creation_time "
                          "or last_update_time")
        matches.sort(key=lambda e: e[key], reverse=direction.strip().upper() == "DESC")
    chosen, token = page(matches, size, page_token_offset(call.arg("page_token")))
    return {"experiments": [experiment_json(call, {**e, "name": cairn_name(e["name"])}) for e in chosen],
            **({"next_page_token": token} if token else {})}


_CLAUSE = re.compile(r"""^\s*(?:attr(?:ibutes?)?\.)?(?P<field>name|tags?\.(?:`[^`]+`|"[^"]+"|[\w.\-]+))\s*
    (?P<op>=|!=|LIKE|ILIKE)\s*(?P<value>'[^']*'|"[^"]*")\s*$""", re.VERBOSE | re.IGNORECASE)


def _matches(experiment: dict[str, Any], text: str | None) -> bool:
    """MLflow's experiment filter: ``name`` and ``tags.<key>`` with = != LIKE ILIKE, joined by AND."""
    if not text:
        return True
    for part in re.split(r"\s+and\s+", text, flags=re.IGNORECASE):
        m = _CLAUSE.match(part)
        if m is None:
            raise invalid(f"cannot read experiment filter {part!r}; use name or tags.<key> with "
                          "=, !=, LIKE or ILIKE and a quoted value")
        field, op, value = m["field"], m["op"].upper(), m["value"][1:-1]
        actual = experiment["name"] if field.lower() == "name" else experiment.get("tags", {}).get(
            field.split(".", 1)[1].strip('`"'))
        if not compare_text(actual, op, value):
            return False
    return True


def compare_text(actual: str | None, op: str, value: str) -> bool:
    if actual is None:
        return False
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    pattern = "^" + re.escape(value).replace("%", ".*").replace("_", ".") + "$"
    return re.match(pattern, actual, (re.IGNORECASE if op == "ILIKE" else 0) | re.DOTALL) is not None


@endpoint("POST", "experiments/update", role="editor")
async def update(call: Call) -> dict[str, Any]:
    cairn_id = await experiment_id_of(call, call.arg("experiment_id", required=True))
    new_name = string(call, "new_name")
    if new_name:
        await call.registry("PATCH", experiment_path(cairn_id), body={"name": cairn_name(new_name)})
    return {}


@endpoint("POST", "experiments/delete", role="admin")
async def delete(call: Call) -> dict[str, Any]:
    cairn_id = await experiment_id_of(call, call.arg("experiment_id", required=True))
    await call.registry("POST", experiment_path(cairn_id, "/archive"))
    return {}


@endpoint("POST", "experiments/restore", role="admin")
async def restore(call: Call) -> dict[str, Any]:
    cairn_id = await experiment_id_of(call, call.arg("experiment_id", required=True))
    await call.registry("POST", experiment_path(cairn_id, "/restore"))
    return {}


@endpoint("POST", "experiments/set-experiment-tag", role="editor")
async def set_tag(call: Call) -> dict[str, Any]:
    cairn_id = await experiment_id_of(call, call.arg("experiment_id", required=True))
    key = TAG_KEY.segment(string(call, "key", required=True), "key")
    value = call.args.get("value")
    if value is not None and not isinstance(value, str):
        raise invalid_value("value", value)
    await call.registry("PUT", experiment_path(cairn_id, f"/tags/{key}"), body={"value": value or ""})
    return {}


@endpoint("POST", "experiments/delete-experiment-tag", role="admin")  # deletions: admin, as for run tags
async def delete_tag(call: Call) -> dict[str, Any]:
    cairn_id = await experiment_id_of(call, call.arg("experiment_id", required=True))
    key = TAG_KEY.segment(string(call, "key", required=True), "key")
    await call.registry("DELETE", experiment_path(cairn_id, f"/tags/{key}"))
    return {}
