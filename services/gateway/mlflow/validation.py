"""Argument checks as strict as MLflow's server, with the messages its clients and tests match.

MLflow's handlers check each request field's JSON type before anything happens: ``{"name": 123}``
or ``"run_id": 31`` is a 400 ``INVALID_PARAMETER_VALUE`` that says ``Invalid value 123 for
parameter 'name' supplied`` (the value as JSON), and a missing field is ``Missing value for
required parameter 'name'.``. Checking here, before any service is called, keeps a bad request
from changing anything.
"""

from __future__ import annotations

import json
from typing import Any

from cairn.services.gateway.mlflow.calls import Call
from cairn.services.gateway.mlflow.errors import MlflowError, invalid

API_DOCS = " See the API docs for more information about request parameters."
SEARCH_MAX_RESULTS = 50000  # MLflow's SEARCH_MAX_RESULTS_THRESHOLD for runs/search
EXPERIMENTS_MAX_RESULTS = 50000


def invalid_value(parameter: str, value: Any, hint: str = "") -> MlflowError:
    shown = json.dumps(value, sort_keys=True, separators=(",", ":"))
    detail = f": {hint}" if hint else "."
    return invalid(f"Invalid value {shown} for parameter '{parameter}' supplied{detail}{API_DOCS}")


def missing(parameter: str) -> MlflowError:
    return invalid(f"Missing value for required parameter '{parameter}'.{API_DOCS}")


def _type_hint(value: Any) -> str:
    return f"Hint: Value was of type '{type(value).__name__}'."


def string(call: Call, name: str, *, required: bool = False, default: str | None = None) -> str | None:
    """A string argument (a query value is always one); ``None``/``""`` is missing."""
    value = call.args.get(name)
    if value is None or value == "":
        if required:
            raise missing(name)
        return default
    if not isinstance(value, str):
        raise invalid_value(name, value, _type_hint(value))
    return value


def integer(call: Call, name: str, *, required: bool = False, default: int | None = None) -> int | None:
    """An integer argument: a JSON integer or a string of one (query values), as MLflow reads int64."""
    value = call.args.get(name)
    if value is None or value == "":
        if required:
            raise missing(name)
        return default
    return as_int(value, name)


def as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise invalid_value(name, value, _type_hint(value))
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise invalid_value(name, value, _type_hint(value))


def array(call: Call, name: str) -> list[Any]:
    """A repeated field: a JSON list (or repeated query values); anything else is invalid."""
    value = call.args.get(name)
    if value is None:
        return call.list_arg(name)
    if not isinstance(value, list):
        if call.request.method == "GET" and isinstance(value, str):
            return call.list_arg(name)
        raise invalid_value(name, value, _type_hint(value))
    return value


def max_results(call: Call, default: int, limit: int) -> int:
    """MLflow rejects (does not cap) a ``max_results`` above its limit, naming the limit."""
    size = integer(call, "max_results", default=default)
    assert size is not None
    if size < 1 or size > limit:
        raise invalid_value("max_results", size, f"It must be at most {limit}")
    return size


def key_value_list(call: Call, name: str, *, value_required: bool = False) -> list[dict[str, Any]]:
    """``params``/``tags``: a list of ``{"key": str, "value": str}``, each key present."""
    items = array(call, name)
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid_value(f"{name}[{n}]", item, _type_hint(item))
        key = item.get("key")
        if key is None or key == "":
            raise missing(f"{name}[{n}].key")
        if not isinstance(key, str):
            raise invalid_value(f"{name}[{n}].key", key, _type_hint(key))
        value = item.get("value")
        if value is None and value_required:
            raise missing(f"{name}[{n}].value")
        if value is not None and not isinstance(value, str):
            raise invalid_value(f"{name}[{n}].value", value, _type_hint(value))
    return items


def metric_list(call: Call) -> list[dict[str, Any]]:
    """``metrics`` of log-batch: key, value and timestamp required (step defaults to 0)."""
    items = array(call, "metrics")
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid_value(f"metrics[{n}]", item, _type_hint(item))
        for field in ("key", "value", "timestamp"):
            if item.get(field) is None or item.get(field) == "":
                raise missing(f"metrics[{n}].{field}")
        if not isinstance(item["key"], str):
            raise invalid_value(f"metrics[{n}].key", item["key"], _type_hint(item["key"]))
        as_int(item["timestamp"], f"metrics[{n}].timestamp")
        if item.get("step") not in (None, ""):
            as_int(item["step"], f"metrics[{n}].step")
    return items
