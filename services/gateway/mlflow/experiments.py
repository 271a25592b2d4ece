"""MLflow experiments = Cairn experiments of the call's project. MLflow's default experiment
``"0"`` is the project's experiment named ``default``; delete/restore are archive/restore."""

from __future__ import annotations

import re
from typing import Any

from cairn.services.gateway.mlflow.calls import ARTIFACT_SCHEME, Call, endpoint, key_values, millis
from cairn.services.gateway.mlflow.errors import MlflowError, invalid, not_found
from cairn.services.gateway.mlflow.identifiers import EXPERIMENT_ID, TAG_KEY
from cairn.services.gateway.mlflow.paging import page, page_token_offset

DEFAULT_EXPERIMENT_ID = "0"


async def experiment_id_of(call: Call, experiment_id: Any, parameter: str = "experiment_id") -> str:
    """Cairn's id for an MLflow experiment id (``"0"`` is the project's ``default``), checked."""
    if isinstance(experiment_id, int) and not isinstance(experiment_id, bool):
        experiment_id = str(experiment_id)  # some clients send the default experiment as the number 0
    if experiment_id == DEFAULT_EXPERIMENT_ID:
        found = (await call.registry("GET", "/experiments", params={"name": "default"}))["experiments"]
        if not found:
            raise not_found(f"project {call.project!r} has no experiment named 'default'")
        return str(found[0]["id"])
    return EXPERIMENT_ID.check(experiment_id, parameter)


def experiment_path(cairn_id: str, rest: str = "") -> str:
    """``/experiments/<id><rest>`` with the id checked and escaped."""
    return f"/experiments/{EXPERIMENT_ID.segment(cairn_id, 'experiment_id')}{rest}"


def experiment_json(call: Call, e: dict[str, Any]) -> dict[str, Any]:
    return {
        "experiment_id": e["id"], "name": e["name"],
        "artifact_location": f"{ARTIFACT_SCHEME}/{call.project}/{e['id']}",
        "lifecycle_stage": "deleted" if e["archived"] else "active",
        "creation_time": millis(e["created_at"]), "last_update_time": millis(e["updated_at"]),
        "tags": [{"key": k, "value": v} for k, v in sorted(e.get("tags", {}).items())],
    }


async def get_experiment(call: Call, experiment_id: Any) -> dict[str, Any]:
    cairn_id = await experiment_id_of(call, experiment_id)
    return await call.registry("GET", experiment_path(cairn_id))


@endpoint("POST", "experiments/create", role="editor")
async def create(call: Call) -> dict[str, Any]:
    name = call.arg("name", required=True)
    tags = {TAG_KEY.segment(k, "tags.key"): v for k, v in key_values(call.arg("tags", []), "tag").items()}
    created = await call.registry("POST", "/experiments", body={"name": str(name)})
    for key, value in tags.items():
        await call.registry("PUT", experiment_path(created["id"], f"/tags/{key}"), body={"value": value})
    return {"experiment_id": created["id"]}


@endpoint("GET", "experiments/get")
async def get(call: Call) -> dict[str, Any]:
    return {"experiment": experiment_json(call, await get_experiment(call, call.arg("experiment_id", required=True)))}


@endpoint("GET", "experiments/get-by-name")
async def get_by_name(call: Call) -> dict[str, Any]:
    name = call.arg("experiment_name", required=True)
    found = (await call.registry("GET", "/experiments", params={"name": name}))["experiments"]
    if not found:
        raise not_found(f"Could not find experiment with name '{name}'")
    return {"experiment": experiment_json(call, found[0])}


@endpoint("POST", "experiments/search")
@endpoint("GET", "experiments/search")
async def search(call: Call) -> dict[str, Any]:
    view = str(call.arg("view_type", "ACTIVE_ONLY"))
    listed = (await call.registry("GET", "/experiments", params={"include_archived": "true"}))["experiments"]
    wanted = {"ACTIVE_ONLY": (False,), "DELETED_ONLY": (True,), "ALL": (False, True)}.get(view)
    if wanted is None:
        raise invalid(f"view_type must be ACTIVE_ONLY, DELETED_ONLY or ALL, not {view!r}")
    matches = [e for e in listed if e["archived"] in wanted and _matches(e, call.arg("filter"))]
    for item in reversed(call.list_arg("order_by")):
        field, _, direction = str(item).strip().partition(" ")
        key = {"name": "name", "experiment_id": "id", "creation_time": "created_at",
               "last_update_time": "updated_at"}.get(field.removeprefix("attributes."))
        if key is None:
            raise invalid(f"cannot order experiments by {field!r}; use name, experiment_id, creation_time "
                          "or last_update_time")
        matches.sort(key=lambda e: e[key], reverse=direction.strip().upper() == "DESC")
    if not call.list_arg("order_by"):
        matches.sort(key=lambda e: e["created_at"], reverse=True)
    chosen, token = page(matches, call.int_arg("max_results", 1000) or 1000, page_token_offset(call.arg("page_token")))
    return {"experiments": [experiment_json(call, e) for e in chosen], **({"next_page_token": token} if token else {})}


_CLAUSE = re.compile(r"""^\s*(?:attributes\.)?(?P<field>name|tags\.(?:`[^`]+`|"[^"]+"|[\w.\-]+))\s*
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
            field[5:].strip('`"'))
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
    new_name = call.arg("new_name")
    if new_name:
        await call.registry("PATCH", experiment_path(cairn_id), body={"name": str(new_name)})
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
    key = TAG_KEY.segment(call.arg("key", required=True), "key")
    await call.registry("PUT", experiment_path(cairn_id, f"/tags/{key}"), body={"value": str(call.arg("value", ""))})
    return {}


@endpoint("POST", "experiments/delete-experiment-tag", role="admin")  # deletions: admin
async def delete_tag(call: Call) -> dict[str, Any]:
    raise MlflowError("NOT_IMPLEMENTED", "Cairn keeps experiment tags; set the tag to another value instead")
