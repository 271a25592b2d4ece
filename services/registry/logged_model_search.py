"""Searching logged models with MLflow's filter syntax (``name = 'm' AND metrics.acc > 0.9 AND
params.lr = '0.1'``), its order_by (field, ascending, optionally a dataset for metrics) and its
datasets filter, over one experiment set's models read from the projection. A search reads at most
MAX_SCANNED models, so a page costs a bounded amount however large the project grows."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cairn.kernel.errors import InvalidInput

MAX_SCANNED = 50_000
_CLAUSE = re.compile(
    r"\s*(?P<field>(?:params?|tags?|metrics?)\.(?:`[^`]+`|\"[^\"]+\"|[\w.\-/:]+)|[A-Za-z_]+)\s*"
    r"(?P<op>!=|>=|<=|=|<|>|(?:NOT\s+)?I?LIKE\b|(?:NOT\s+)?IN\b)\s*"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\([^)]*\)|-?[\d.]+(?:[eE][-+]?\d+)?)\s*", re.IGNORECASE)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)
ATTRIBUTES = {"name": "name", "model_id": "id", "model_type": "model_type", "status": "status",
              "source_run_id": "source_run_id", "creation_timestamp": "creation_timestamp",
              "creation_time": "creation_timestamp", "last_updated_timestamp": "last_updated_timestamp"}
MLFLOW_STATUS = {"PENDING": "pending", "READY": "ready", "FAILED": "failed", "UPLOAD_FAILED": "failed"}

Predicate = Callable[[dict[str, Any]], bool]


def millis(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _split(text: str) -> list[str]:
    """Split on AND outside quotes."""
    parts, start, quote = [], 0, ""
    for i, c in enumerate(text):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"`":
            quote = c
        elif i >= start and (m := _AND.match(text, i)) is not None:
            parts.append(text[start:i])
            start = m.end()
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _literal(raw: str) -> Any:
    if raw[0] in "'\"":
        return raw[1:-1].replace("\\" + raw[0], raw[0])
    if raw.startswith("("):
        return [_literal(v.strip()) for v in re.findall(r"'[^']*'|\"[^\"]*\"|[^,\s]+", raw[1:-1])]
    return float(raw)


def _like(pattern: str, value: str, fold: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if fold else re.DOTALL) is not None


def _compare(op: str, have: Any, want: Any) -> bool:
    if have is None:
        return False
    if op in ("IN", "NOT IN"):
        return (have in want) == (op == "IN")
    if op.endswith("LIKE"):
        return _like(str(want), str(have), "ILIKE" in op) != op.startswith("NOT")
    if isinstance(want, float):
        try:
            have = float(have)
        except (TypeError, ValueError):
            return False
    elif isinstance(have, (int, float)):
        raise InvalidInput(f"{want!r} is compared with a number: write it without quotes")
    return {"=": have == want, "!=": have != want, "<": have < want, ">": have > want,
            "<=": have <= want, ">=": have >= want}[op]


def latest_metric(model: dict[str, Any], key: str, dataset: dict[str, Any] | None = None) -> Any:
    """The model's last value of metric ``key`` (by step, then time), on ``dataset`` if given."""
    found = [m for m in model["metrics"] if m["key"] == key and (
        dataset is None or (m.get("dataset_name") == dataset.get("dataset_name") and (
            not dataset.get("dataset_digest") or m.get("dataset_digest") == dataset.get("dataset_digest"))))]
    return max(found, key=lambda m: (m["step"], m["timestamp"]))["value"] if found else None


def _value_of(field: str, attributes: dict[str, str] = ATTRIBUTES) -> Callable[[dict[str, Any]], Any]:
    kind, _, key = field.partition(".")
    kind = kind.lower().rstrip("s")
    if key:
        key = key.strip("`\"")
        if kind == "metric":
            return lambda m: latest_metric(m, key)
        if kind == "param":
            return lambda m: m["params"].get(key)
        return lambda m: m["tags"].get(key)
    attribute = attributes.get(field.lower())
    if attribute is None:
        raise InvalidInput(f"cannot filter by {field!r}: use one of {', '.join(sorted(attributes))}, "
                           "params.<key>, tags.<key> or metrics.<key>")
    return lambda m: m[attribute]


def compile_filter(text: str | None, attributes: dict[str, str] = ATTRIBUTES) -> list[Predicate]:
    """MLflow's filter syntax as predicates over a model (or, with other ``attributes``, an
    evaluation dataset) dict: all must hold."""
    predicates: list[Predicate] = []
    for clause in _split(text or ""):
        m = _CLAUSE.fullmatch(clause)
        if m is None:
            raise InvalidInput(f"cannot parse the filter clause {clause.strip()!r}: write <field> <op> <value>, "
                               "e.g. name = 'my-model' or metrics.accuracy > 0.9")
        field, op = m["field"], re.sub(r"\s+", " ", m["op"].upper())
        want = _literal(m["value"])
        if field.lower() == "status":
            want = [MLFLOW_STATUS.get(str(w).removeprefix("LOGGED_MODEL_"), str(w)) for w in want] \
                if isinstance(want, list) else MLFLOW_STATUS.get(str(want).removeprefix("LOGGED_MODEL_"), want)
        predicates.append(_predicate(_value_of(field, attributes), op, want))
    return predicates


def _predicate(value_of: Callable[[dict[str, Any]], Any], op: str, want: Any) -> Predicate:
    return lambda model: _compare(op, value_of(model), want)


def _sort_key(order: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    field = str(order.get("field_name") or "creation_timestamp")
    if field.startswith("metrics."):
        dataset = {"dataset_name": order["dataset_name"], "dataset_digest": order.get("dataset_digest")} \
            if order.get("dataset_name") else None
        key = field[len("metrics."):]
        return lambda m: latest_metric(m, key, dataset)
    return _value_of(field)


def order_models(models: list[dict[str, Any]], order_by: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable sorts from the last key to the first; missing values last; default newest first."""
    out = sorted(models, key=lambda m: m["created_seq"], reverse=True)
    for order in reversed(order_by or [{"field_name": "creation_timestamp", "ascending": False}]):
        key, ascending = _sort_key(order), bool(order.get("ascending", True))
        present = [m for m in out if key(m) is not None]
        present.sort(key=key, reverse=not ascending)
        out = present + [m for m in out if key(m) is None]
    return out


def with_datasets(models: list[dict[str, Any]], datasets: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Only models with a metric on one of ``datasets`` (name, and digest if given)."""
    if not datasets:
        return models
    return [m for m in models if any(
        metric.get("dataset_name") == d.get("dataset_name")
        and (not d.get("dataset_digest") or metric.get("dataset_digest") == d.get("dataset_digest"))
        for metric in m["metrics"] for d in datasets)]


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("page_token is not one this search returned") from None
    if offset < 0:
        raise InvalidInput("page_token is not one this search returned")
    return offset
