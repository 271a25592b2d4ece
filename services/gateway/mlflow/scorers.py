"""MLflow 3's registered scorers (``/api/3.0/mlflow/scorers/...``) over the registry's ``scorer``
records: versions per (experiment, name), listed, read and deleted as MLflow's REST store expects.
MLflow's Scorer message has an integer experiment id, which Cairn's ids are not, so it is left out
(clients know the experiment they asked about)."""

from __future__ import annotations

from typing import Any

from cairn.services.gateway.mlflow.calls import Call, endpoint, millis
from cairn.services.gateway.mlflow.errors import invalid, not_found
from cairn.services.gateway.mlflow.experiments import experiment_id_of


def scorer_json(version: dict[str, Any]) -> dict[str, Any]:
    return {"scorer_name": version["name"], "scorer_version": version["version"],
            "serialized_scorer": version["serialized"], "creation_time": millis(version["created_at"]),
            "scorer_id": version["scorer_id"]}


def _name(call: Call) -> str:
    name = call.arg("name", required=True)
    if not isinstance(name, str):
        raise invalid(f"Invalid value {name!r} for parameter 'name' supplied: a string is expected")
    return name


async def _versions(call: Call, name: str | None = None, latest_only: bool = False) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"experiment_id": await experiment_id_of(call, call.arg("experiment_id", required=True))}
    if name is not None:
        params["name"] = name
    if latest_only:
        params["latest_only"] = "true"
    return (await call.registry("GET", "/scorers", params=params))["scorers"]  # type: ignore[no-any-return]


@endpoint("POST", "scorers/register", role="editor")
async def register(call: Call) -> dict[str, Any]:
    serialized = call.arg("serialized_scorer", required=True)
    if not isinstance(serialized, str):
        raise invalid("Invalid value for parameter 'serialized_scorer': a string (JSON text) is expected")
    experiment_id = await experiment_id_of(call, call.arg("experiment_id", required=True))
    created = await call.registry("POST", "/scorers", body={"experiment_id": experiment_id, "name": _name(call),
                                                            "serialized_scorer": serialized})
    return {"version": created["version"], "scorer_id": created["scorer_id"], "experiment_id": experiment_id,
            "name": created["name"], "serialized_scorer": created["serialized"],
            "creation_time": millis(created["created_at"])}


@endpoint("GET", "scorers/list")
async def list_scorers(call: Call) -> dict[str, Any]:
    return {"scorers": [scorer_json(v) for v in await _versions(call, latest_only=True)]}


@endpoint("GET", "scorers/versions")
async def list_versions(call: Call) -> dict[str, Any]:
    return {"scorers": [scorer_json(v) for v in await _versions(call, _name(call))]}


@endpoint("GET", "scorers/get")
async def get(call: Call) -> dict[str, Any]:
    name, version = _name(call), call.int_arg("version")
    versions = await _versions(call, name)
    chosen = [v for v in versions if version is None or v["version"] == version]
    if not chosen:
        detail = f" and version {version}" if version is not None else ""
        raise not_found(f"Scorer with name '{name}'{detail} not found for experiment {call.arg('experiment_id')}")
    return {"scorer": scorer_json(chosen[-1])}


@endpoint("DELETE", "scorers/delete", role="admin")  # deletions: admin, as on the services
async def delete(call: Call) -> dict[str, Any]:
    params: dict[str, Any] = {"experiment_id": await experiment_id_of(call, call.arg("experiment_id", required=True)),
                              "name": _name(call)}
    version = call.int_arg("version")
    if version is not None:
        params["version"] = version
    await call.registry("DELETE", "/scorers", params=params)
    return {}
