"""Status back to the code host: a pipeline run's state as a GitHub commit status, and the call
that sends it, so the pull request that triggered the run shows its result.

The body follows GitHub's commit-status API (``POST /repos/{owner}/{repo}/statuses/{sha}``):
``state`` (pending, success, failure, error), ``target_url`` (the run), ``description`` (at most
140 characters) and ``context`` (``cairn/<pipeline>``, so each pipeline has its own check line).
GitLab and Gitea accept the same shape on compatible endpoints.

The call is an outgoing call to a URL a site admin configures, so it goes through the egress guard
the gateway's webhooks use (``cairn.kernel.egress``: globally routable addresses only, checked on
the address actually connected to). One guard for every outgoing call means one place where the
rules can be wrong. The token is sent only in the ``Authorization`` header and never appears in a
log line, a ``repr`` or a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from cairn.kernel.egress import Egress
from cairn.kernel.errors import InvalidInput

log = logging.getLogger(__name__)

DESCRIPTION_LIMIT = 140  # GitHub refuses a longer description with a 422
STATES = {None: "pending", "succeeded": "success", "failed": "failure", "cancelled": "error"}
# GitHub's rules: an owner is 1-39 letters, digits or single hyphens; a repository name is
# letters, digits, '.', '-', '_' (but not '.' or '..', which would walk the URL's path).
REPO = re.compile(r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})/(?P<name>[A-Za-z0-9._-]{1,100})\Z")
SHA = re.compile(r"[0-9a-fA-F]{40}\Z")


# --- the body ------------------------------------------------------------------------------------

def commit_status(run_state: Mapping[str, Any], *, run_url: str) -> dict[str, str]:
    """The commit-status body for a ``pipeline_run`` state (``services.pipelines.domain.evolve``):
    a run in progress is pending, then success, failure (which step, and a gate's numbers) or error
    (cancelled). ``run_url`` is the link shown next to the status."""
    outcome = run_state["outcome"]
    if outcome not in STATES:
        raise ValueError(f"pipeline run outcome {outcome!r} is not one of {sorted(k for k in STATES if k)}")
    return {"state": STATES[outcome], "target_url": run_url,
            "description": cut(_describe(run_state)), "context": f"cairn/{run_state['name']}"}


def cut(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """``text`` on one line, at most ``limit`` characters; a cut one ends with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


def _describe(run: Mapping[str, Any]) -> str:
    steps: Mapping[str, Mapping[str, Any]] = run["steps"]
    done = sum(1 for s in steps.values() if s["state"] in ("succeeded", "cached", "skipped"))
    outcome = run["outcome"]
    if outcome is None:
        running = [sid for sid, s in steps.items() if s["state"] in ("running", "waiting_approval")]
        waiting = [sid for sid, s in steps.items() if s["state"] == "waiting_approval"]
        now = f"; waiting for approval of {', '.join(waiting)}" if waiting else (
            f"; running {', '.join(running)}" if running else "")
        return f"running: {done} of {len(steps)} steps done{now}"
    if outcome == "cancelled":
        return f"cancelled: {run.get('cancel_reason') or 'cancel requested'}"
    if outcome == "failed":
        failed = [sid for sid, s in steps.items() if s["state"] == "failed"]
        if not failed:
            return "failed"
        step = steps[failed[0]]
        why = _gate_numbers(step, failed_only=True) if step.get("comparisons") else (step.get("message") or "")
        reason = f" ({step['reason']})" if step.get("reason") and step.get("reason") != "gate" else ""
        return f"step {failed[0]} failed{reason}" + (f": {why}" if why else "")
    cached = sum(1 for s in steps.values() if s["state"] == "cached")
    skipped = sum(1 for s in steps.values() if s["state"] == "skipped")
    gates = [_gate_numbers(s, champion_only=True) for s in steps.values() if s.get("comparisons")]
    counts = [f"{n} {word}" for n, word in ((cached, "cached"), (skipped, "skipped")) if n]
    extra = f" ({', '.join(counts)})" if counts else ""
    return f"succeeded: {len(steps)} steps{extra}" + (f"; gate {'; '.join(g for g in gates if g)}" if gates else "")


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _gate_numbers(step: Mapping[str, Any], *, failed_only: bool = False, champion_only: bool = False) -> str:
    """A gate's comparisons in short: ``auc 0.91 vs champion 0.93 (need +0.01)``; a failed gate
    shows what failed, a passed one its champion comparison (the conditions held)."""
    parts = []
    for c in step["comparisons"] or ():
        if (failed_only and c.get("passed")) or (champion_only and c.get("kind") != "champion"):
            continue
        if c.get("kind") == "champion":
            if c.get("champion") is None:
                parts.append(f"{c['metric']} {_number(c.get('candidate'))}, no champion yet")
            else:
                parts.append(f"{c['metric']} {_number(c.get('candidate'))} vs champion {_number(c['champion'])}"
                             f" (need {'+' if c.get('direction', 'max') == 'max' else '-'}"
                             f"{_number(c.get('min_improvement', 0))})")
        else:
            values = ", ".join(f"{k}={_number(v)}" for k, v in (c.get("values") or {}).items())
            parts.append(f"{c.get('condition')}" + (f" ({values})" if values else ""))
    return "; ".join(parts) or (step.get("message") or "")


# --- the call ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    """How a status call ended: ``delivered``, the last HTTP ``status`` (None without a reply), the
    number of ``attempts`` made (0: refused before connecting) and a ``message`` for people."""

    delivered: bool
    status: int | None
    attempts: int
    message: str


def status_path(repo: str, sha: str) -> str:
    """``/repos/{owner}/{repo}/statuses/{sha}``, or InvalidInput naming what is wrong."""
    if not isinstance(repo, str) or not REPO.match(repo) or repo.split("/")[1] in (".", ".."):
        raise InvalidInput(f"repo {repo!r} is not owner/name (letters, digits, '-'; the name may also hold '.' "
                           "and '_')", details={"field": "repo"})
    if not isinstance(sha, str) or not SHA.match(sha):
        raise InvalidInput(f"sha {sha!r} is not a full commit id (40 hex digits)", details={"field": "sha"})
    return f"/repos/{repo}/statuses/{sha.lower()}"


class StatusReporter:
    """Sends commit statuses to one code host API (``CAIRN_PIPELINES_STATUS_URL``, e.g.
    ``https://api.github.com``) with one token. A 5xx, a connection failure or a timeout is tried
    again after ``backoff_s``, doubling, up to ``attempts`` calls; a 4xx is the code host saying the
    request is wrong (bad token, unknown commit, a 422), so it is not repeated and its message is
    returned."""

    def __init__(self, api_url: str, token: str, egress: Egress, *, attempts: int = 5, backoff_s: float = 1.0,
                 timeout_s: float = 10.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.egress = egress
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._sleep = sleep  # time is the one thing tests may replace

    def __repr__(self) -> str:
        return f"StatusReporter({self.api_url!r}, token=<hidden>, attempts={self.attempts})"

    async def report(self, repo: str, sha: str, body: Mapping[str, str]) -> Delivery:
        """POST ``body`` as the status of commit ``sha`` in ``repo`` (``owner/name``). InvalidInput
        for a bad repo or sha, before any call; every other ending is a :class:`Delivery`."""
        url = self.api_url + status_path(repo, sha)
        payload = json.dumps(dict(body), separators=(",", ":")).encode()
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/vnd.github+json",
                   "Content-Type": "application/json", "User-Agent": "cairn-pipelines"}
        where = f"status for {repo}@{sha[:12]}"
        problem, last_status = "", None
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await self._sleep(self.backoff_s * 2 ** (attempt - 2))
            try:
                status, reply = await asyncio.wait_for(self.egress.post_for_reply(url, payload, headers),
                                                       self.timeout_s)
            except InvalidInput as err:  # the guard refused the destination: nothing was sent
                log.warning("%s not sent: %s", where, err)
                return Delivery(False, None, attempt - 1, f"not sent: {err}")
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
                problem = f"no reply ({type(err).__name__}{': ' + str(err) if str(err) else ''})"
                last_status = None
                log.info("%s: attempt %d of %d: %s", where, attempt, self.attempts, problem)
                continue
            if 200 <= status < 300:
                return Delivery(True, status, attempt, f"the code host accepted the status ({status})")
            message = _reply_message(reply)
            if 400 <= status < 500:
                log.warning("%s refused (%d): %s", where, status, message)
                return Delivery(False, status, attempt, f"the code host refused the status ({status}): {message}")
            problem, last_status = f"the code host answered {status}: {message}", status
            log.info("%s: attempt %d of %d: %s", where, attempt, self.attempts, problem)
        return Delivery(False, last_status, self.attempts, f"gave up after {self.attempts} attempts; last: {problem}")


def _reply_message(reply: bytes) -> str:
    """GitHub's error body (``{"message", "errors": [...]}``) in one line, or the reply's text."""
    text = reply.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        return cut(text, 300) or "(no message)"
    if not isinstance(doc, dict):
        return cut(text, 300)
    parts = [str(doc.get("message") or "")]
    for error in doc.get("errors") or ():
        parts.append(str(error.get("message") or error) if isinstance(error, dict) else str(error))
    return cut("; ".join(p for p in parts if p), 300) or "(no message)"
