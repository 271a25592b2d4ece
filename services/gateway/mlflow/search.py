"""MLflow's run filter and order_by, translated to the registry's search language.

The registry already reads MLflow-like filters (``params.lr = '0.1' and metrics.acc > 0.9``); this
module renames MLflow's attributes (``run_name``, ``start_time``, ``user_id``...), turns
double-quoted keys into back-quoted ones, status names to Cairn's, and epoch milliseconds into the
ISO times Cairn stores.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from cairn.protocol import CLIENT_START_TIME_TAG
from cairn.services.gateway.mlflow.errors import invalid

# A run's start time as its MLflow client gave it (epoch ms, a hidden tag set by runs/create);
# MLflow's start_time order is the registry's client_start_time (that tag, else when Cairn started
# the run), and the registry ends every order with run_id ASC, MLflow's tie-break.
START_TIME_TAG = CLIENT_START_TIME_TAG
START_TIME_ORDER = ["attributes.client_start_time"]

ATTRIBUTES = {"run_id": "run_id", "run_name": "name", "status": "status", "start_time": "started_at",
              "end_time": "ended_at", "user_id": "created_by", "created": "created_at",
              "Created": "created_at", "experiment_id": "experiment_id"}
TIME_ATTRIBUTES = {"started_at", "ended_at", "created_at"}
UNSUPPORTED = {"artifact_uri", "lifecycle_stage"}

_IDENT = re.compile(r"""(?P<prefix>metrics|metric|params|param|parameters|parameter|tags|tag|attributes|attribute|attr)
    \.(?P<key>`[^`]+`|"[^"]+"|[A-Za-z0-9_\-./:]+)""", re.VERBOSE)
_BARE = re.compile(r"^(?P<name>[A-Za-z_]+)$")
_FIELD = r"""(?:[A-Za-z_]+\.)?(?:`[^`]+`|"[^"]+"|[^\s=!<>`"]+)"""
_CLAUSE = re.compile(r"""^\s*(?P<ident>""" + _FIELD + r""")\s*(?P<op>!=|<=|>=|=|<|>|\s+LIKE\s+|\s+ILIKE\s+|\s+NOT\s+IN\s+|\s+IN\s+)
    \s*(?P<value>.+?)\s*$""", re.VERBOSE | re.IGNORECASE | re.DOTALL)
_ORDER = re.compile(r"""^\s*(?P<ident>""" + _FIELD + r""")(?:\s+(?P<direction>ASC|DESC))?\s*$""", re.IGNORECASE)
_AND = re.compile(r"""\s+AND\s+(?=(?:[^'"]*['"][^'"]*['"])*[^'"]*$)""", re.IGNORECASE)


def _identifier(raw: str) -> tuple[str, str]:
    """(registry identifier, attribute name or '')."""
    m = _IDENT.fullmatch(raw)
    if m:
        prefix, key = m["prefix"].lower(), m["key"]
        if key.startswith('"'):
            key = f"`{key[1:-1]}`"
        if prefix.startswith("attr"):
            return _attribute(key.strip("`"))
        short = {"metric": "metrics", "param": "params", "parameters": "params", "parameter": "params",
                 "tag": "tags"}.get(prefix, prefix)
        return f"{short}.{key}", ""
    if _BARE.match(raw):
        return _attribute(raw)
    raise invalid(f"cannot read {raw!r} in the filter: use metrics.<key>, params.<key>, tags.<key> or "
                  "attributes.<name> (keys with spaces in backquotes or double quotes)")


def _attribute(name: str) -> tuple[str, str]:
    if name in UNSUPPORTED:
        raise invalid(f"searching runs by {name} is not supported by Cairn; use run_view_type for deleted runs")
    if name not in ATTRIBUTES:
        raise invalid(f"Invalid attribute key '{name}' specified. Valid keys are {sorted(ATTRIBUTES)}")
    cairn = ATTRIBUTES[name]
    return f"attributes.{cairn}", cairn


def _iso(millis: str) -> str:
    moment = datetime.fromtimestamp(float(millis) / 1000, tz=timezone.utc)
    return "'" + moment.isoformat(timespec="microseconds").replace("+00:00", "Z") + "'"


def translate_filter(text: str | None) -> str | None:
    """An MLflow ``filter_string`` in the registry's filter language."""
    if not text or not text.strip():
        return None
    parts = []
    for clause in _AND.split(text.strip()):
        m = _CLAUSE.match(clause)
        if m is None:
            raise invalid(f"cannot read the filter clause {clause!r}; use <field> <op> <value>, joined by AND")
        ident, attribute = _identifier(m["ident"])
        op = " ".join(m["op"].split()).upper()
        value = m["value"]
        if attribute == "status":
            value = value.lower()
        elif attribute in TIME_ATTRIBUTES and re.fullmatch(r"-?\d+(\.\d+)?", value):
            value = _iso(value)
        elif attribute == "created_by" and re.fullmatch(r"'[^':]*'", value) and op in ("=", "!="):
            ident, op, value = ident, "LIKE" if op == "=" else op, f"'{value[1:-1]}:%'"
        parts.append(f"{ident} {op} {value}")
    return " and ".join(parts)


def translate_order_by(items: list[str]) -> list[str]:
    out = []
    for item in items:
        m = _ORDER.match(str(item))
        if m is None:
            raise invalid(f"cannot read order_by {item!r}; use '<field> [ASC|DESC]'")
        ident, attribute = _identifier(m["ident"])
        for key in (START_TIME_ORDER if attribute == "started_at" else [ident]):
            out.append(f"{key} {m['direction'].upper()}" if m["direction"] else key)
    return out
