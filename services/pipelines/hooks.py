"""``POST /hooks/git``: a code host's push -> pipeline runs of the pushed commit.

Only the gateway reaches this route (INTERNAL): its own unauthenticated route
``POST /api/v1/pipelines/hooks/git`` forwards the raw body and the code host's headers. The
caller is therefore not who the push is from; the push proves itself with the hook's secret:

1. the body is parsed (``parse_push``: a bad body or an event we do not handle is a 400);
2. the definitions registered for the payload's repository (GitHub ``full_name``, GitLab
   ``path_with_namespace``, any project) whose hook kind is the sender's are found, and the
   signature (GitHub) or token (GitLab) is checked against each one's secret on the raw body;
   none verifies: 401, and nothing is fetched or started;
3. per verified definition: its registered ``on.push`` filter, then the commit is fetched into the
   service's mirror, the pipeline file is read *at that commit* (its own ``on.push`` must select
   the push too: a branch that changed the file changes what runs), a code archive of the commit's
   tree is uploaded to the project through the artifacts service, and the run is started with
   trigger ``{kind: push, commit, branch|tag, repo, pusher}`` and that code record.

Answer: 202 with the runs started, or 200 saying why none was (a ping, a filtered push). A
redelivered push (same ref and commit) starts nothing new: the run is started with the idempotency
key ``trigger.push.<ref>.<commit>.<pipeline>``, which the kernel remembers.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cairn.kernel.commands import CommandContext
from cairn.kernel.egress import Egress
from cairn.kernel.errors import CairnError, Unauthorized, Unavailable
from cairn.kernel.identity import INTERNAL, requires
from cairn.kernel.ids import new_id
from cairn.kernel.service import Runtime, ServiceRuntime
from cairn.pipelines import PipelineError, load_pipeline
from cairn.pipelines.triggers import (
    Ping,
    PushEvent,
    PushFilter,
    matches,
    parse_push,
    verify_github,
    verify_gitlab,
)
from cairn.services.pipelines import gitcode
from cairn.services.pipelines.definitions import ACTOR, DefinitionsReader, pipeline_of
from cairn.services.pipelines.sealed import hook_secret, key_of

log = logging.getLogger(__name__)
router = APIRouter(tags=["pipelines"])


class TriggerSettings(BaseSettings):
    """The trigger parts' own settings (CAIRN_ prefix): the egress guard's, shared with the
    gateway's webhooks (CAIRN_WEBHOOKS_ALLOW_PRIVATE, CAIRN_WEBHOOK_ALLOW_NETWORKS,
    CAIRN_WEBHOOK_DNS_SERVER), the clock's tick, the link in statuses, and the artifacts URL."""

    model_config = SettingsConfigDict(env_prefix="CAIRN_", extra="ignore")

    webhooks_allow_private: bool = False
    webhook_allow_networks: list[str] = Field(default_factory=list)
    webhook_dns_server: str = ""
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    pipelines_tick_s: float = Field(default=1.0, gt=0)
    pipelines_public_url: str = ""
    artifacts_url: str = ""
    pipelines_allow_local_repos: bool = False  # clone URLs that are local paths or file:// (docs: "In the service")
    # tests only: the schedule clock reads epoch seconds from this file (time is the one thing
    # tests replace; the service runs in its own process, so the replacement is a file)
    pipelines_clock_file: Path | None = None

    def clock(self) -> float:
        if self.pipelines_clock_file is not None and self.pipelines_clock_file.exists():
            return float(self.pipelines_clock_file.read_text().strip())
        return time.time()


def trigger_parts(app: FastAPI) -> tuple[TriggerSettings, Egress, gitcode.GitMirrors]:
    """The settings, egress guard and git mirrors, made once per app (``start_triggers`` closes them)."""
    parts = getattr(app.state, "trigger_parts", None)
    if parts is None:
        settings = TriggerSettings()
        egress = Egress(allow_private=settings.webhooks_allow_private, allow_networks=settings.webhook_allow_networks,
                        dns_server=settings.webhook_dns_server, timeout_s=settings.webhook_timeout_s)
        runtime: ServiceRuntime = app.state.runtime
        mirrors = gitcode.GitMirrors(runtime.settings.read_model_dir("pipelines") / "git", egress,
                                     allow_local=settings.pipelines_allow_local_repos)
        parts = app.state.trigger_parts = (settings, egress, mirrors)
    return parts  # type: ignore[no-any-return]


def _reader(rt: ServiceRuntime) -> DefinitionsReader:
    store = rt.store
    assert isinstance(store, DefinitionsReader)
    return store


def _verifies(definition: dict[str, Any], source: str, headers: Any, body: bytes, key: bytes) -> bool:
    hook = definition["hook"]
    if not hook or hook["kind"] != source:
        return False
    secret = hook_secret(key, definition)  # sealed in the event and the read model (sealed.py)
    try:
        if source == "github":
            verify_github(secret, body, headers.get("x-hub-signature-256"))
        else:
            verify_gitlab(secret, headers.get("x-gitlab-token"))
    except Unauthorized:
        return False
    return True


@router.post("/hooks/git", **requires(INTERNAL))
async def git_hook(request: Request, rt: Runtime) -> JSONResponse:
    """A GitHub or GitLab push (or ping), forwarded by the gateway; see the module's docstring."""
    body = await request.body()
    event = parse_push(request.headers, body)
    repository = event.repository if isinstance(event, PushEvent) else _ping_repository(body)
    candidates = _reader(rt).definitions_for_repo(repository) if repository else []
    key = await key_of(request.app, rt)
    verified = [d for d in candidates if _verifies(d, event.source, request.headers, body, key)]
    if not verified:
        raise Unauthorized(f"no pipeline registered for repository {repository or '(none named)'} accepts this "
                           f"{event.source} delivery: check the hook's secret and the definition's repo.full_name")
    if isinstance(event, Ping):
        return JSONResponse({"ping": True, "pipelines": [f"{d['project']}/{d['name']}" for d in verified]})
    started: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for definition in verified:
        where = {"project": definition["project"], "pipeline": definition["name"]}
        try:
            outcome = await start_for_push(request.app, rt, definition, event)
        except CairnError as err:
            log.warning("pipelines: push %s of %s for %s/%s not started: %s", event.after, repository,
                        definition["project"], definition["name"], err.message)
            (failed if isinstance(err, Unavailable) else skipped).append({**where, "reason": err.message})
            continue
        (started if "run" in outcome else skipped).append({**where, **outcome})
    if failed and not started:  # the code host retries a 5xx: the push is not lost to a passing failure
        raise Unavailable(f"no run started: {failed[0]['reason']}", details={"failed": failed, "skipped": skipped})
    return JSONResponse({"started": started, "skipped": skipped, "failed": failed},
                        status_code=202 if started else 200)


def _ping_repository(body: bytes) -> str | None:
    repo = json.loads(body).get("repository")
    return repo.get("full_name") if isinstance(repo, dict) and isinstance(repo.get("full_name"), str) else None


async def start_for_push(app: FastAPI, rt: ServiceRuntime, definition: dict[str, Any],
                         event: PushEvent) -> dict[str, Any]:
    """``{"run": id}`` when a run was started (or had been, for this push), else ``{"reason"}``."""
    registered = pipeline_of(definition)
    if registered.on.push is None:
        return {"reason": "the registered pipeline has no on.push"}
    if not matches(event, PushFilter(*_push_filter(registered.on.push))):
        return {"reason": _filtered(event, "the registered on.push")}
    commit = event.head_commit or event.after
    name, project = definition["name"], definition["project"]
    key = f"trigger.push.{event.ref}.{commit}.{name}"
    if (run := _reader(rt).remembered_run(project, key)) is not None:
        return {"run": run, "duplicate": True}
    settings, _, mirrors = trigger_parts(app)
    repo_dir = await mirrors.fetch(definition["repo"]["clone_url"], commit)
    text = await gitcode.read_file(repo_dir, commit, definition["path"])
    if text is None:
        return {"reason": f"commit {commit} has no {definition['path']}"}
    try:
        pipeline = load_pipeline(text)
    except PipelineError as err:
        return {"reason": f"{definition['path']} at {commit} is not a valid pipeline: {err.message}"}
    if pipeline.name != name:
        return {"reason": f"{definition['path']} at {commit} defines pipeline {pipeline.name!r}, not {name!r}"}
    if pipeline.on.push is None or not matches(event, PushFilter(*_push_filter(pipeline.on.push))):
        return {"reason": _filtered(event, f"on.push of {definition['path']} at the commit")}
    code = await gitcode.archive(repo_dir, commit)
    await upload_archive(settings.artifacts_url or getattr(rt.settings, "artifacts_url", ""), rt, project, code)
    trigger = {"kind": "push", "commit": commit, "repo": event.repository, "pusher": event.pusher,
               **({"tag": event.tag} if event.tag is not None else {"branch": event.branch})}
    status = definition["status"]
    from cairn.services.pipelines.starting import start_pipeline_run  # Part A's

    ctx = CommandContext(actor=ACTOR, idempotency_key=key, correlation_id=new_id())
    view = await start_pipeline_run(
        rt, ctx, project=project, pipeline=pipeline, params=definition["params"], trigger=trigger,
        code=code.record(commit=commit, branch=event.branch, repo=event.repository),
        status={"url": status["url"], "repo": event.repository, "sha": commit} if status else None)
    if view.get("skipped"):
        return {"reason": f"concurrency policy: {view.get('reason', 'skipped')}"}
    return {"run": view["id"], "code": code.digest}


def _push_filter(push: Any) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return push.branches, push.tags, push.paths


def _filtered(event: PushEvent, by: str) -> str:
    if event.deleted:
        return "the ref was deleted"
    ref = f"tag {event.tag}" if event.tag is not None else f"branch {event.branch}"
    return f"{ref} (paths: {', '.join(sorted(event.paths)[:5]) or 'none listed'}) is filtered out by {by}"


async def upload_archive(artifacts_url: str, rt: ServiceRuntime, project: str, code: gitcode.CodeArchive) -> None:
    """Put the archive into ``project`` (as the service itself), so the project's jobs may read it;
    re-uploading an archive the project holds already is harmless (the store keeps it once)."""
    if not artifacts_url:
        raise Unavailable("CAIRN_ARTIFACTS_URL is not set: the pipelines service cannot upload code archives")
    async with httpx.AsyncClient(timeout=120) as http:
        resp = await http.put(f"{artifacts_url.rstrip('/')}/projects/{project}/blobs/{code.digest}",
                              content=code.data,
                              headers={**rt.signer.internal(), "Content-Type": "application/octet-stream"})
    if resp.status_code >= 300:
        raise Unavailable(f"uploading the code archive to project {project!r} failed: {resp.status_code} "
                          f"{resp.text[:300]}")
