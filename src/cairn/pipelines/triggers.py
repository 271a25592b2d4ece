"""Trigger primitives: git push webhooks (GitHub and GitLab formats), their signatures, branch and
path filters, and filters over events of record. Pure functions, no I/O: the pipelines engine calls
them from its webhook endpoint and its event-log consumer, and tests call them directly.

Signatures are checked over the raw body bytes, before any parsing, with a constant-time compare,
so a forged payload is refused without being read and the check leaks no timing.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn.kernel.errors import BadRequest, InvalidInput, Unauthorized
from cairn.protocol import EVENT_SUBJECT_PREFIX

ZERO_SHA = "0" * 40
GITHUB_EVENT = "x-github-event"
GITHUB_SIGNATURE = "x-hub-signature-256"
GITLAB_EVENT = "x-gitlab-event"
GITLAB_TOKEN = "x-gitlab-token"
SIGNATURE_RE = re.compile(r"\Asha256=([0-9a-f]{64})\Z")


@dataclass(frozen=True)
class PushEvent:
    """One push, whichever host sent it. ``ref`` is the full ref (``refs/heads/main``); ``branch``
    or ``tag`` its short name. ``after`` is the pushed commit (all zeros when the ref was deleted)."""

    source: str  # "github" | "gitlab"
    ref: str
    before: str
    after: str
    repository: str  # owner/name (GitHub full_name, GitLab path_with_namespace)
    clone_url: str
    pusher: str
    paths: frozenset[str] = field(default_factory=frozenset)  # added, modified or removed by the commits
    head_commit: str | None = None

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def tag(self) -> str | None:
        return self.ref.removeprefix("refs/tags/") if self.ref.startswith("refs/tags/") else None

    @property
    def deleted(self) -> bool:
        return self.after == ZERO_SHA


@dataclass(frozen=True)
class Ping:
    """A host checking that the hook is reachable (GitHub ``ping``): answer 200, start nothing."""

    source: str
    hook_id: str | None = None


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def verify_github(secret: str | bytes, body: bytes, header: str | None) -> None:
    """Raise :class:`Unauthorized` unless ``header`` is ``sha256=`` + the HMAC-SHA256 of ``body``."""
    if not header:
        raise Unauthorized("missing X-Hub-Signature-256 header: configure the webhook with a secret")
    match = SIGNATURE_RE.match(header.strip())
    if not match:
        raise Unauthorized("malformed X-Hub-Signature-256 header: expected 'sha256=' and 64 hex digits")
    key = secret.encode() if isinstance(secret, str) else secret
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match.group(1)):
        raise Unauthorized("X-Hub-Signature-256 does not match the body: check the webhook's secret")


def verify_gitlab(token: str, header: str | None) -> None:
    """Raise :class:`Unauthorized` unless ``header`` (X-Gitlab-Token) equals ``token``."""
    if not header:
        raise Unauthorized("missing X-Gitlab-Token header: configure the webhook with a secret token")
    if not hmac.compare_digest(token.encode(), header.encode()):
        raise Unauthorized("X-Gitlab-Token does not match: check the webhook's secret token")


def parse_push(headers: Mapping[str, str], body: bytes | str) -> PushEvent | Ping:
    """A GitHub ``push``/``ping`` or a GitLab ``Push Hook``/``Tag Push Hook`` -> :class:`PushEvent`
    or :class:`Ping`; any other event or a malformed body -> :class:`BadRequest` saying which."""
    h = _headers(headers)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("webhook body is not JSON: set the hook's content type to application/json") from None
    if not isinstance(payload, dict):
        raise BadRequest("webhook body must be a JSON object")
    if GITHUB_EVENT in h:
        kind = h[GITHUB_EVENT].strip().lower()
        if kind == "ping":
            return Ping("github", str(payload.get("hook_id")) if payload.get("hook_id") is not None else None)
        if kind != "push":
            raise BadRequest(f"GitHub event {kind!r} is not handled: subscribe the hook to push events only")
        return _github_push(payload)
    if GITLAB_EVENT in h:
        kind = h[GITLAB_EVENT].strip()
        if kind not in ("Push Hook", "Tag Push Hook"):
            raise BadRequest(f"GitLab event {kind!r} is not handled: enable only push and tag push events")
        return _gitlab_push(payload)
    raise BadRequest("no X-GitHub-Event or X-Gitlab-Event header: send GitHub- or GitLab-format webhooks")


def _text(payload: Mapping[str, Any], *path: str, required: bool = True) -> str:
    value: Any = payload
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    if value is None or not isinstance(value, (str, int)):
        if required:
            raise BadRequest(f"push payload has no {'.'.join(path)}")
        return ""
    return str(value)


def _paths(commits: Any) -> frozenset[str]:
    if not isinstance(commits, list):
        return frozenset()
    return frozenset(p for c in commits if isinstance(c, Mapping)
                     for key in ("added", "modified", "removed") for p in (c.get(key) or []) if isinstance(p, str))


def _github_push(p: dict[str, Any]) -> PushEvent:
    head = p.get("head_commit")
    pusher = _text(p, "pusher", "name", required=False) or _text(p, "sender", "login", required=False)
    return PushEvent(source="github", ref=_text(p, "ref"), before=_text(p, "before"), after=_text(p, "after"),
                     repository=_text(p, "repository", "full_name"),
                     clone_url=_text(p, "repository", "clone_url"), pusher=pusher, paths=_paths(p.get("commits")),
                     head_commit=_text(head, "id") if isinstance(head, Mapping) else None)


def _gitlab_push(p: dict[str, Any]) -> PushEvent:
    after = _text(p, "after")
    # GitLab's checkout_sha is the commit the ref points at (null when deleted): the one to run.
    head = p.get("checkout_sha") if isinstance(p.get("checkout_sha"), str) else None
    return PushEvent(source="gitlab", ref=_text(p, "ref"), before=_text(p, "before"), after=after,
                     repository=_text(p, "project", "path_with_namespace"),
                     clone_url=_text(p, "project", "git_http_url"),
                     pusher=_text(p, "user_username", required=False) or _text(p, "user_name", required=False),
                     paths=_paths(p.get("commits")), head_commit=head if after != ZERO_SHA else None)


# --- branch and path filters ---------------------------------------------------------------------

@functools.cache
def _glob(pattern: str) -> re.Pattern[str]:
    """GitHub Actions' glob: ``*`` any characters but ``/``, ``**`` any characters, ``?`` one."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def glob_matches(patterns: Sequence[str], name: str) -> bool:
    """Whether ``name`` is selected: patterns in order, ``!`` negates, the last match wins; a list of
    only negations starts from everything selected."""
    selected = all(p.startswith("!") for p in patterns)
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _glob(pattern[1:] if negated else pattern).match(name):
            selected = not negated
    return selected


@dataclass(frozen=True)
class PushFilter:
    """Which pushes start a pipeline. An empty list means "any"; tags match only ``tags`` (a push
    filter without tags ignores tag pushes), and deletions never start a pipeline."""

    branches: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> PushFilter:
        """``{"branches": [...], "tags": [...], "paths": [...]}`` -> a filter; errors name the key."""
        unknown = set(spec) - {"branches", "tags", "paths"}
        if unknown:
            raise InvalidInput(f"push filter has unknown keys {sorted(unknown)}; allowed: branches, tags, paths",
                               details={"field": sorted(unknown)[0]})
        values = {}
        for key in ("branches", "tags", "paths"):
            raw = spec.get(key, [])
            raw = [raw] if isinstance(raw, str) else raw
            if not isinstance(raw, list) or not all(isinstance(p, str) and p.strip("!") for p in raw):
                raise InvalidInput(f"push filter {key!r} must be a list of glob patterns", details={"field": key})
            values[key] = tuple(raw)
        return cls(**values)


def matches(event: PushEvent, push_filter: PushFilter) -> bool:
    """Whether a push should start the pipeline: ref by branch/tag patterns, then at least one
    changed path selected by the path patterns (when there are path patterns)."""
    if event.deleted:
        return False
    if event.tag is not None:
        if not push_filter.tags or not glob_matches(push_filter.tags, event.tag):
            return False
    elif event.branch is not None:
        if push_filter.branches and not glob_matches(push_filter.branches, event.branch):
            return False
    else:
        return False
    if push_filter.paths:
        return any(glob_matches(push_filter.paths, path) for path in event.paths)
    return True



# --- filters over events of record ---------------------------------------------------------------

# The aggregate whose subject carries each event type's prefix, so a consumer reads only those
# subjects (cairn.evt.<project>.<aggregate>.<id>) instead of the whole log. Types not listed are
# read from every subject and told apart by their Cairn-Type header.
AGGREGATE_OF_TYPE = {"dataset": "dataset", "model": "model", "model_version": "model", "alert": "alert",
                     "alert_rule": "alert_rule", "deployment": "deployment", "profile": "profile",
                     "monitor": "monitor", "sweep": "sweep", "webhook": "webhook"}
# Aggregates whose id is the entity's name: a filter on ``data.name`` narrows the subject to one id,
# and the name is offered to ``where`` as ``data.name`` even though the event body leaves it out.
NAMED_BY_ID = frozenset({"dataset", "deployment"})
TYPE_RE = re.compile(r"\A[a-z_]+\.(?:[a-z_]+|\*)\Z")
TOKEN_SAFE_RE = re.compile(r"\A[A-Za-z0-9_-]+\Z")
_MISSING = object()


@dataclass(frozen=True)
class EventFilter:
    """``{type: "dataset.version_created", where: {"data.name": "fraud"}}``: an event type (or
    ``aggregate.*``) and dotted paths into the event that must equal a value (or one of a list)."""

    type: str
    where: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> EventFilter:
        """Validate a filter spec from a pipeline file; errors name the key to fix."""
        unknown = set(spec) - {"type", "where"}
        if unknown:
            raise InvalidInput(f"event filter has unknown keys {sorted(unknown)}; allowed: type, where",
                               details={"field": sorted(unknown)[0]})
        kind = spec.get("type")
        if not isinstance(kind, str) or not TYPE_RE.match(kind):
            raise InvalidInput(f"event filter type {kind!r} must be an event type like 'dataset.version_created' "
                               "or 'alert.*'", details={"field": "type"})
        where = spec.get("where") or {}
        if not isinstance(where, Mapping):
            raise InvalidInput("event filter 'where' must map paths like 'data.name' to values",
                               details={"field": "where"})
        for path, value in where.items():
            if not isinstance(path, str) or not path.startswith("data.") or path.endswith("."):
                raise InvalidInput(f"event filter path {path!r} must start with 'data.' (e.g. 'data.name')",
                                   details={"field": "where"})
            if isinstance(value, (dict, set)):
                raise InvalidInput(f"event filter value for {path!r} must be a value or a list of values",
                                   details={"field": "where"})
        return cls(type=kind, where=tuple((p, tuple(v) if isinstance(v, list) else v) for p, v in where.items()))

    @property
    def aggregate(self) -> str | None:
        return AGGREGATE_OF_TYPE.get(self.type.split(".", 1)[0])

    def subject(self, project: str = "*") -> str:
        """The NATS subject a consumer for this filter subscribes to (one project, or ``*``)."""
        aggregate = self.aggregate
        if aggregate is None:
            return f"{EVENT_SUBJECT_PREFIX}.{project}.>"
        name = dict(self.where).get("data.name")
        if aggregate in NAMED_BY_ID and isinstance(name, str) and TOKEN_SAFE_RE.match(name):
            return f"{EVENT_SUBJECT_PREFIX}.{project}.{aggregate}.{name}"
        return f"{EVENT_SUBJECT_PREFIX}.{project}.{aggregate}.>"


def _lookup(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def event_matches(event_filter: EventFilter, event_type: str, data: Mapping[str, Any], *,
                  aggregate_id: str | None = None) -> bool:
    """Whether an event of record triggers: its type matches and every ``where`` path holds.
    ``aggregate_id`` supplies ``data.name`` for aggregates named by their id (datasets)."""
    wanted, prefix = event_filter.type, event_type.split(".", 1)[0]
    type_matches = prefix == wanted[:-2] if wanted.endswith(".*") else event_type == wanted
    if not type_matches:
        return False
    view: Mapping[str, Any] = data
    if aggregate_id is not None and AGGREGATE_OF_TYPE.get(prefix) in NAMED_BY_ID and "name" not in data:
        view = {**data, "name": aggregate_id}
    for path, expected in event_filter.where:
        value = _lookup({"data": view}, path)
        allowed = expected if isinstance(expected, tuple) else (expected,)
        if value is _MISSING or value not in allowed:
            return False
    return True
