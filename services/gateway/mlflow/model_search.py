"""MLflow's registry search language, applied to the registered models and versions the registry lists.

``search_registered_models`` and ``search_model_versions`` take a filter of clauses joined by
``AND``: an attribute (``name``; for versions also ``run_id``, ``source_path``,
``version_number``) or ``tags.<key>`` (``tag.<key>``, keys in backquotes or double quotes), with
``= != LIKE ILIKE`` (``IN`` / ``NOT IN`` for ``run_id``). Every MLflow client adds
``tag.`mlflow.prompt.is_prompt` != 'true'`` so that prompts stay out of model searches; a model
without that tag is not a prompt, so ``!=`` on that key matches a missing tag, as MLflow's stores do.
Registry listings are small (one project's models), so the filter runs here over the listing rather
than in a second search language in the registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cairn.services.gateway.mlflow.errors import invalid
from cairn.services.gateway.mlflow.experiments import compare_text

PROMPT_TAG = "mlflow.prompt.is_prompt"
MAX_MODELS = 1000  # MLflow's SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD
MAX_VERSIONS = 200_000  # and SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD (clients ask for 10,000 by default)

_AND = re.compile(r"""\s+AND\s+(?=(?:[^'"`]*['"`][^'"`]*['"`])*[^'"`]*$)""", re.IGNORECASE)
_CLAUSE = re.compile(
    r"""^\s*(?:(?P<prefix>tags|tag|attributes|attribute|attr)\.)?(?P<key>`[^`]+`|"[^"]+"|[A-Za-z0-9_\-.:]+)
    \s*(?P<op>!=|=|\s+LIKE\s+|\s+ILIKE\s+|\s+NOT\s+IN\s+|\s+IN\s+)\s*(?P<value>.+?)\s*$""",
    re.VERBOSE | re.IGNORECASE | re.DOTALL)
_STRING = re.compile(r"""^(?:'(?P<single>(?:[^']|'')*)'|"(?P<double>(?:[^"]|"")*)")$""", re.DOTALL)
_ORDER = re.compile(r"^\s*(?P<key>[A-Za-z_]+)(?:\s+(?P<direction>ASC|DESC))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Clause:
    """One comparison: ``tag`` says whether ``key`` names a tag or an attribute."""

    tag: bool
    key: str
    op: str
    values: tuple[str, ...]


def _string(raw: str, clause: str) -> str:
    m = _STRING.match(raw.strip())
    if m is None:
        raise invalid(f"in the filter clause {clause!r}, the value {raw!r} must be a string in single or "
                      "double quotes")
    return m["single"].replace("''", "'") if m["single"] is not None else m["double"].replace('""', '"')


def _values(raw: str, op: str, clause: str) -> tuple[str, ...]:
    if op not in ("IN", "NOT IN"):
        return (_string(raw, clause),)
    inner = raw.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise invalid(f"in the filter clause {clause!r}, {op} takes a list in parentheses: ('a', 'b')")
    items = re.findall(r"""'(?:[^']|'')*'|"(?:[^"]|"")*\"""", inner[1:-1])
    if not items:
        raise invalid(f"in the filter clause {clause!r}, the {op} list is empty")
    return tuple(_string(item, clause) for item in items)


def parse_filter(text: Any, attributes: dict[str, set[str]], what: str) -> list[Clause]:
    """The clauses of an MLflow registry filter; ``attributes`` maps each attribute to its operators."""
    if text is None or not str(text).strip():
        return []
    clauses = []
    for part in _AND.split(str(text).strip()):
        m = _CLAUSE.match(part)
        if m is None:
            raise invalid(f"cannot read the filter clause {part!r} for {what}; use <attribute> <op> '<value>' or "
                          "tags.<key> <op> '<value>', joined by AND")
        key, op = m["key"], " ".join(m["op"].split()).upper()
        if key[0] in "`\"":
            key = key[1:-1]
        is_tag = (m["prefix"] or "").lower() in ("tags", "tag")
        if is_tag:
            if op not in ("=", "!=", "LIKE", "ILIKE"):
                raise invalid(f"Invalid comparator '{op}' for tags in the filter of {what}; use = != LIKE ILIKE")
        elif key not in attributes:
            raise invalid(f"Invalid attribute key '{key}' in the filter of {what}. Valid keys are "
                          f"{sorted(attributes)} and tags.<key>")
        elif op not in attributes[key]:
            raise invalid(f"Invalid comparator '{op}' for {key} in the filter of {what}; use "
                          f"{' '.join(sorted(attributes[key]))}")
        clauses.append(Clause(is_tag, key, op, _values(m["value"], op, part)))
    return clauses


def matches(clauses: list[Clause], fields: dict[str, str | None], tags: dict[str, str]) -> bool:
    """Whether one model or version (its attribute ``fields`` and ``tags``) meets every clause."""
    for c in clauses:
        actual = tags.get(c.key) if c.tag else fields.get(c.key)
        if c.op == "IN":
            ok = actual in c.values
        elif c.op == "NOT IN":
            ok = actual is not None and actual not in c.values
        elif actual is None and c.tag and c.key == PROMPT_TAG and c.op == "!=":
            ok = True  # a model without the prompt tag is not a prompt
        else:
            ok = compare_text(actual, c.op, c.values[0])
        if not ok:
            return False
    return True


def sort_key(order_by: list[str], keys: dict[str, Callable[[dict[str, Any]], Any]],
             tie_break: list[tuple[str, bool]], what: str) -> list[tuple[Callable[[dict[str, Any]], Any], bool]]:
    """(key function, descending) pairs: the caller's ``order_by`` and then ``tie_break``, each key once."""
    out: list[tuple[Callable[[dict[str, Any]], Any], bool]] = []
    seen: set[str] = set()
    for item in order_by:
        m = _ORDER.match(str(item))
        if m is None or m["key"] not in keys:
            raise invalid(f"Invalid order_by clause '{item}' for {what}; order by one of {sorted(keys)}, "
                          "optionally followed by ASC or DESC")
        out.append((keys[m["key"]], (m["direction"] or "ASC").upper() == "DESC"))
        seen.add(m["key"])
    out.extend((keys[k], desc) for k, desc in tie_break if k not in seen)
    return out


def ordered(items: list[dict[str, Any]], order: list[tuple[Callable[[dict[str, Any]], Any], bool]]) -> list[dict[str, Any]]:
    """``items`` sorted by several keys, each ascending or descending (stable sorts, last key first)."""
    for key, descending in reversed(order):
        items = sorted(items, key=key, reverse=descending)
    return items


def max_results(raw: Any, default: int, limit: int) -> int:
    """MLflow rejects a page size over its threshold instead of capping it."""
    if raw in (None, ""):
        return default
    try:
        size = int(raw)
    except (TypeError, ValueError):
        raise invalid(f"max_results must be a number, not {raw!r}") from None
    if size < 1 or size > limit:
        raise invalid(f"Invalid value for max_results. It must be at most {limit}, but got value {size}")
    return size
