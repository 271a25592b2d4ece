"""MLflow 3's evaluation datasets (``/api/3.0/mlflow/datasets/...``) over the registry's
``eval_dataset`` records: MLflow sends tags and records as JSON text inside the JSON body, and
reads them back the same way."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from cairn.services.gateway.mlflow.calls import Call, endpoint
from cairn.services.gateway.mlflow.errors import invalid, not_found
from cairn.services.gateway.mlflow.experiments import experiment_id_of
from cairn.services.gateway.mlflow.identifiers import escape

DATASET_ID = re.compile(r"d-[0-9a-f]{32}")


def dataset_path(dataset_id: Any, rest: str = "") -> str:
    """``/eval-datasets/<id><rest>``; an id Cairn never issued is a 404, as MLflow answers."""
    if not isinstance(dataset_id, str) or not DATASET_ID.fullmatch(dataset_id):
        raise not_found(f"Evaluation dataset with id '{dataset_id}' not found")
    return f"/eval-datasets/{dataset_id}{rest}"


def _json_text(value: Any, parameter: str, kind: type) -> Any:
    """A field MLflow sends as JSON text (tags, records), parsed and checked."""
    if value is None or value == "":
        return kind()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise invalid(f"Invalid value for parameter '{parameter}': it must be JSON text") from None
    if not isinstance(value, kind):
        raise invalid(f"Invalid value for parameter '{parameter}': a JSON {kind.__name__} is expected")
    return value


def dataset_json(dataset: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(f"{dataset['id']}:{dataset['last_update_time']}".encode()).hexdigest()[:8]
    return {"dataset_id": dataset["id"], "name": dataset["name"], "tags": json.dumps(dataset["tags"]),
            "digest": digest, "created_time": dataset["created_time"],
            "last_update_time": dataset["last_update_time"], "created_by": dataset["created_by"],
            "last_updated_by": dataset["last_updated_by"], "experiment_ids": dataset["experiment_ids"]}


@endpoint("POST", "datasets/create", role="editor")
async def create(call: Call) -> dict[str, Any]:
    name = call.arg("name", required=True)
    if not isinstance(name, str):
        raise invalid(f"Invalid value {name!r} for parameter 'name' supplied: a string is expected")
    experiment_ids = [await experiment_id_of(call, e, "experiment_ids") for e in call.list_arg("experiment_ids")]
    body = {"name": name, "experiment_ids": experiment_ids,
            "tags": {str(k): "" if v is None else str(v) for k, v in _json_text(call.arg("tags"), "tags", dict).items()},
            "created_by": call.arg("created_by")}
    return {"dataset": dataset_json(await call.registry("POST", "/eval-datasets", body=body))}


@endpoint("GET", "datasets/{id}")
async def get(call: Call) -> dict[str, Any]:
    return {"dataset": dataset_json(await call.registry("GET", dataset_path(call.args["id"])))}


@endpoint("DELETE", "datasets/{id}", role="admin")  # deletions: admin, as on the services
async def delete(call: Call) -> dict[str, Any]:
    await call.registry("DELETE", dataset_path(call.args["id"]))
    return {}


def _one_id_spelled_out(ids: list[Any]) -> list[Any]:
    """MLflow's client builds its request from ``experiment_ids=<one id as a string>`` (as its own
    tests call it) and so sends the id's characters one by one: MLflow's numeric ids survive that
    by luck, Cairn's 32-character ids would not. Several single characters are that one id."""
    if len(ids) > 1 and all(isinstance(i, str) and len(i) == 1 for i in ids):
        return ["".join(ids)]
    return ids


async def _search(call: Call) -> dict[str, Any]:
    experiment_ids = [await experiment_id_of(call, e, "experiment_ids")
                      for e in _one_id_spelled_out(call.list_arg("experiment_ids"))]
    max_results = call.int_arg("max_results", 1000) or 1000
    if not 1 <= max_results <= 1000:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results': it must be between 1 and 1000")
    body = {"experiment_ids": experiment_ids or None, "filter": call.arg("filter_string"),
            "order_by": call.list_arg("order_by") or None, "page_size": max_results,
            "page_token": call.arg("page_token")}
    found = await call.registry("POST", "/eval-datasets/search", body=body)
    out: dict[str, Any] = {"datasets": [dataset_json(d) for d in found["datasets"]]}
    if found.get("next_page_token"):
        out["next_page_token"] = found["next_page_token"]
    return out


@endpoint("POST", "datasets/search")
async def search(call: Call) -> dict[str, Any]:
    return await _search(call)


@endpoint("GET", "datasets/search")
async def search_get(call: Call) -> dict[str, Any]:
    return await _search(call)


@endpoint("PATCH", "datasets/{id}/tags", role="editor")
async def set_tags(call: Call) -> dict[str, Any]:
    tags = {str(k): "" if v is None else str(v) for k, v in _json_text(call.arg("tags", required=True), "tags", dict).items()}
    return {"dataset": dataset_json(await call.registry("PATCH", dataset_path(call.args["id"], "/tags"),
                                                        body={"tags": tags}))}


@endpoint("DELETE", "datasets/{id}/tags/{key}", role="admin")
async def delete_tag(call: Call) -> dict[str, Any]:
    await call.registry("DELETE", dataset_path(call.args["id"], f"/tags/{escape(str(call.args['key']))}"))
    return {}


@endpoint("POST", "datasets/{id}/records", role="editor")
async def upsert_records(call: Call) -> dict[str, Any]:
    path = dataset_path(call.args["id"], "/records")
    records = _json_text(call.arg("records", required=True), "records", list)
    return await call.registry("POST", path, body={"records": records,  # type: ignore[no-any-return]
                                                   "updated_by": call.arg("updated_by")})


@endpoint("GET", "datasets/{id}/records")
async def get_records(call: Call) -> dict[str, Any]:
    params = {"page_size": call.int_arg("max_results", 1000)}
    if call.arg("page_token"):
        params["page_token"] = call.arg("page_token")
    found = await call.registry("GET", dataset_path(call.args["id"], "/records"), params=params)
    out: dict[str, Any] = {"records": json.dumps(found["records"])}
    if found.get("next_page_token"):
        out["next_page_token"] = found["next_page_token"]
    return out


@endpoint("GET", "datasets/{id}/experiment-ids")
async def experiment_ids(call: Call) -> dict[str, Any]:
    return {"experiment_ids": (await call.registry("GET", dataset_path(call.args["id"])))["experiment_ids"]}
