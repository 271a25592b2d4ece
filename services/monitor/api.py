"""Monitor HTTP API: thin routes over the domain (rules, references, profiles) and the read
models (the projection's rules and alerts, the window store's windows). Reading needs VIEWER,
changing EDITOR, in the route's project."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import InvalidInput, NotFound
from cairn.kernel.http import command_context
from cairn.kernel.identity import EDITOR, VIEWER, requires
from cairn.kernel.ids import DIGEST_PATTERN, ID_PATTERN, PROJECT_NAME_PATTERN, new_id
from cairn.kernel.service import Runtime, ServiceRuntime
from cairn.services.monitor import domain
from cairn.services.monitor.profiles import ProfileBlobs, register
from cairn.services.monitor.store import MonitorStore
from cairn.services.monitor.window_store import WindowStore
from cairn.services.monitor.windows import downsample

router = APIRouter(prefix="/projects/{project}", tags=["monitor"])
Ctx = Annotated[CommandContext, Depends(command_context)]
ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]
DeploymentName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="deployment name")]
RuleId = Annotated[str, Path(pattern=ID_PATTERN, description="the rule's id")]
Digest = Annotated[str, Path(pattern=DIGEST_PATTERN, description="a profile's digest")]
DEPLOYMENT = "/deployments/{name}"
MAX_POINTS = 2000
MAX_LIST = 1000
_DURATION = re.compile(r"\A\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*\Z")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _store(rt: ServiceRuntime) -> MonitorStore:
    store = rt.store
    assert isinstance(store, MonitorStore)
    return store


def _windows(request: Request) -> WindowStore:
    windows: WindowStore = request.app.state.windows
    return windows


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Persistence(Strict):
    k: int = Field(default=1, ge=1, le=domain.MAX_PERSISTENCE_N)
    n: int = Field(default=1, ge=1, le=domain.MAX_PERSISTENCE_N)


class RuleCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    metric: str = Field(description=f"one of {', '.join(domain.METRICS)}")
    column: str | None = Field(default=None, max_length=256, description="the column of a drift_score rule")
    comparison: str = Field(pattern=r"^(>|>=|<|<=)$")
    threshold: float
    window: str | None = Field(default=None, max_length=16,
                               description="a window size the monitor keeps (default: the smallest)")
    persistence: Persistence = Persistence()
    cooldown_s: float = Field(default=300, ge=0, le=domain.MAX_COOLDOWN_S)
    action: dict[str, Any] | None = Field(default=None, description='null, {"rollback": true} or {"pipeline": "name"}')


class RuleChange(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    metric: str | None = None
    column: str | None = Field(default=None, max_length=256)
    comparison: str | None = Field(default=None, pattern=r"^(>|>=|<|<=)$")
    threshold: float | None = None
    window: str | None = Field(default=None, max_length=16)
    persistence: Persistence | None = None
    cooldown_s: float | None = Field(default=None, ge=0, le=domain.MAX_COOLDOWN_S)
    action: dict[str, Any] | None = None


class ReferenceSet(Strict):
    profile: str = Field(pattern=DIGEST_PATTERN, description="the digest of a registered profile")


class ProfileIn(Strict):
    profile: dict[str, Any] = Field(description="a profile as Profile.to_json() writes it")
    source: dict[str, Any] = Field(default_factory=dict,
                                   description='{"dataset": name, "version": n}, {"run": id} or {}')


def _sizes(request: Request) -> list[str]:
    return list(_windows(request).sizes)


def _live_deployment(rt: ServiceRuntime, project: str, name: str) -> None:
    if not _store(rt).deployment_exists(project, name):
        raise NotFound(f"deployment {name!r} does not exist in project {project!r}")


def _seconds(text: str, field: str) -> float:
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise InvalidInput(f"{field} {text[:40]!r} is not a duration: use e.g. 30s, 15m, 1h or 7d",
                           details={"field": field})
    return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]


def _time_range(since: str, until: str | None) -> tuple[float, float]:
    """``since``: a duration back from ``until``; ``until``: unix seconds (default now)."""
    if until:
        try:
            end = float(until)
        except ValueError:
            raise InvalidInput(f"until {until[:40]!r} is not a time: give unix seconds",
                               details={"field": "until"}) from None
    else:
        end = time.time()
    return end - _seconds(since, "since"), end


def _size(request: Request, size: str | None) -> str:
    """The window size asked for; none asked: the smallest the monitor keeps."""
    sizes = _sizes(request)
    if size is None:
        return sizes[0]
    if size not in sizes:
        raise InvalidInput(f"size {size!r} is not a window size the monitor keeps; use one of {', '.join(sizes)}",
                           details={"field": "size"})
    return size


# --- rules ---------------------------------------------------------------------------------------

@router.post(DEPLOYMENT + "/rules", status_code=201, **requires(EDITOR))
async def create_rule(project: ProjectName, name: DeploymentName, body: RuleCreate, request: Request, rt: Runtime,
                      ctx: Ctx) -> dict[str, Any]:
    """A rule on the deployment's windows of one size: fire when ``metric comparison threshold``
    holds in k of the last n windows (not again within ``cooldown_s`` of the last firing)."""
    await rt.runner.wait_for(await rt.log.last_sequence())  # a deployment created just now
    _live_deployment(rt, project, name)
    rule_id = new_id()
    raw = body.model_dump()
    await rt.commands.execute(ctx, project=project, aggregate="alert_rule", aggregate_id=rule_id,
                              decide=lambda s: domain.create_rule(s, deployment=name, rule=raw,
                                                                  sizes=_sizes(request)))
    return _rule(rt, project, name, rule_id)


def _rule(rt: ServiceRuntime, project: str, deployment: str, rule_id: str) -> dict[str, Any]:
    for rule in _store(rt).rules(project, deployment):
        if rule["id"] == rule_id:
            return rule
    raise NotFound(f"alert rule {rule_id!r} does not exist on deployment {deployment!r}")


@router.get(DEPLOYMENT + "/rules", **requires(VIEWER))
async def list_rules(project: ProjectName, name: DeploymentName, request: Request, rt: Runtime) -> dict[str, Any]:
    """The deployment's rules, each with whether it is firing now and its verdict on each of its
    last n closed windows (``history``: start, end, value, breached)."""
    windows = _windows(request)
    rules = _store(rt).rules(project, name)
    for rule in rules:
        recent = windows.history(project, name, rule["window"], float("inf"), rule["persistence"]["n"])
        rule["history"] = domain.evaluate(rule, recent)
    return {"rules": rules}


@router.patch(DEPLOYMENT + "/rules/{rule_id}", **requires(EDITOR))
async def change_rule(project: ProjectName, name: DeploymentName, rule_id: RuleId, body: RuleChange,
                      request: Request, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Change some of a rule's fields (the rest stay); the whole rule is checked again."""
    changes = body.model_dump(exclude_unset=True)
    await rt.commands.execute(ctx, project=project, aggregate="alert_rule", aggregate_id=rule_id,
                              decide=lambda s: domain.update_rule(s, rule_id=rule_id, deployment=name,
                                                                  changes=changes, sizes=_sizes(request)))
    return _rule(rt, project, name, rule_id)


@router.delete(DEPLOYMENT + "/rules/{rule_id}", status_code=204, **requires(EDITOR))
async def delete_rule(project: ProjectName, name: DeploymentName, rule_id: RuleId, rt: Runtime,
                      ctx: Ctx) -> Response:
    await rt.commands.execute(ctx, project=project, aggregate="alert_rule", aggregate_id=rule_id,
                              decide=lambda s: domain.delete_rule(s, rule_id=rule_id, deployment=name))
    return Response(status_code=204)


@router.get("/alerts", **requires(VIEWER))
async def list_alerts(project: ProjectName, rt: Runtime,
                      state: Annotated[str, Query(pattern="^(open|all)$")] = "open",
                      deployment: Annotated[str | None, Query(pattern=PROJECT_NAME_PATTERN)] = None,
                      limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100) -> dict[str, Any]:
    """Alerts, newest first: open ones (default) or all, of one deployment or every one."""
    return {"alerts": _store(rt).alerts(project, open_only=state == "open", deployment=deployment, limit=limit)}


# --- windows, drift, status ------------------------------------------------------------------------

@router.get(DEPLOYMENT + "/windows", **requires(VIEWER))
async def list_windows(project: ProjectName, name: DeploymentName, request: Request, size: str | None = None,
                       since: str = "1h", until: str | None = None,
                       max_points: Annotated[int, Query(ge=1, le=MAX_POINTS)] = 200) -> dict[str, Any]:
    """Closed windows of one size that started in ``[until - since, until)``, oldest first; more
    than ``max_points`` are merged in equal groups (counts summed, the worst quantile kept)."""
    start, end = _time_range(since, until)
    rows = await asyncio.to_thread(_windows(request).closed, project, name, _size(request, size), start, end)
    return {"size": size, "since": start, "until": end, "windows": downsample(rows, max_points)}


@router.get(DEPLOYMENT + "/drift", **requires(VIEWER))
async def list_drift(project: ProjectName, name: DeploymentName, request: Request, size: str | None = None,
                     since: str = "1h", column: Annotated[str | None, Query(max_length=256)] = None) -> dict[str, Any]:
    """Drift of each closed window against the reference (per column, or one ``column``)."""
    start, end = _time_range(since, None)
    rows = await asyncio.to_thread(_windows(request).closed, project, name, _size(request, size), start, end)
    out = []
    for row in rows:
        drift = row["drift"]
        if drift is not None and column is not None:
            drift = {**drift, "columns": {k: v for k, v in (drift.get("columns") or {}).items() if k == column}}
        out.append({"start": row["start"], "end": row["end"], "drift": drift})
    return {"size": size, "windows": out}


@router.get(DEPLOYMENT + "/status", **requires(VIEWER))
async def status(project: ProjectName, name: DeploymentName, request: Request, rt: Runtime) -> dict[str, Any]:
    """The newest closed window of each size, the open windows so far, the drift of the newest
    window per column, the reference, the rules and the open alerts."""
    windows = _windows(request)
    latest = windows.latest(project, name)
    newest = latest[next(iter(latest))] if latest else None
    return {"deployment": name, "windows": latest, "open": windows.open_windows(project, name),
            "drift": (newest or {}).get("drift"), "reference": _store(rt).reference(project, name),
            "rules": _store(rt).rules(project, name),
            "alerts": _store(rt).alerts(project, open_only=True, deployment=name, limit=MAX_LIST)}


# --- references and profiles ----------------------------------------------------------------------

@router.put(DEPLOYMENT + "/reference", **requires(EDITOR))
async def set_reference(project: ProjectName, name: DeploymentName, body: ReferenceSet, rt: Runtime,
                        ctx: Ctx) -> dict[str, Any]:
    """Compare the deployment's windows with this registered profile."""
    await rt.runner.wait_for(await rt.log.last_sequence())
    _live_deployment(rt, project, name)
    registered = _store(rt).profile(project, body.profile) is not None
    await rt.commands.execute(ctx, project=project, aggregate="monitor", aggregate_id=name,
                              decide=lambda s: domain.set_reference(s, deployment=name, digest=body.profile,
                                                                    registered=registered))
    return {"deployment": name, **_store(rt).reference(project, name)}


@router.get(DEPLOYMENT + "/reference", **requires(VIEWER))
async def get_reference(project: ProjectName, name: DeploymentName, rt: Runtime) -> dict[str, Any]:
    """The reference profile: the one set, else the default (``chosen``: set, default or null)."""
    return {"deployment": name, **_store(rt).reference(project, name)}


@router.post("/profiles", status_code=201, **requires(EDITOR))
async def post_profile(project: ProjectName, body: ProfileIn, request: Request, rt: Runtime,
                       ctx: Ctx) -> dict[str, Any]:
    """Register a profile: stored by its digest as a blob of the project in the artifacts service
    (its members can download it there), then announced; registering the same one again changes
    nothing. 503 when the artifacts service does not answer (nothing is registered)."""
    blobs: ProfileBlobs = request.app.state.profiles
    return await register(rt, ctx, blobs, project, body.profile, body.source)


@router.get("/profiles", **requires(VIEWER))
async def list_profiles(project: ProjectName, rt: Runtime,
                        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100) -> dict[str, Any]:
    return {"profiles": _store(rt).profiles(project, limit)}


@router.get("/profiles/{digest}", **requires(VIEWER))
async def get_profile(project: ProjectName, digest: Digest, request: Request, rt: Runtime) -> Response:
    """The profile as registered (``Profile.to_json()``)."""
    if _store(rt).profile(project, digest) is None:
        raise NotFound(f"profile {digest} is not registered in project {project!r}")
    blobs: ProfileBlobs = request.app.state.profiles
    return Response(await asyncio.to_thread(blobs.read, digest), media_type="application/json")
