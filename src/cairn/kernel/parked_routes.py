"""Site admins' routes for a service's parked events: list them, retry one, skip one.

Retry and skip are not done to the read model directly: they append a decision
(``projection.event_retried`` / ``projection.event_skipped``, naming the admin) to the log and
answer once the projection has acted on it, so the log records who decided and a rebuild replays
the decision (see ``cairn.kernel.parking``).
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Query, Request

from cairn.kernel.errors import Conflict, InvalidInput, NotFound
from cairn.kernel.identity import SITE_ADMIN, caller_of, requires
from cairn.kernel.parking import RETRIED, SKIPPED, decision, list_parked
from cairn.kernel.projection import ProjectionRunner
from cairn.kernel.schemas import validate_event
from cairn.kernel.store import ParkingStore


def parked_router(name: str) -> APIRouter:
    router = APIRouter(prefix="/admin/parked", tags=["ops"])

    def runner_of(request: Request) -> ProjectionRunner:
        runner: ProjectionRunner = request.app.state.runtime.runner
        if not runner.parking:
            raise InvalidInput(f"the {name} projection does not park events (its store cannot)")
        return runner

    def parked_one(runner: ProjectionRunner, sequence: int) -> dict[str, Any] | None:
        found = list_parked(cast(ParkingStore, runner.store).reader(), after=sequence - 1, limit=1)
        return found[0].to_dict() if found and found[0].sequence == sequence else None

    async def decide(request: Request, kind: str, sequence: int) -> tuple[ProjectionRunner, str]:
        runner = runner_of(request)
        if parked_one(runner, sequence) is None:
            raise NotFound(f"{name} has no parked event at sequence {sequence}; "
                           f"see GET /api/v1/{name}/admin/parked")
        actor = caller_of(request).actor
        event = decision(kind, name, sequence, actor)
        validate_event(event)
        appended = await runner.log.append(event, expected_last_subject_seq=None)
        await runner.wait_for(appended.sequence)
        return runner, actor

    @router.get("", **requires(SITE_ADMIN))
    async def list_parked_events(request: Request, after: int = Query(0, ge=0),
                                 limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        """The events this service's projection parked, oldest first, with their errors."""
        runner = runner_of(request)
        parked = list_parked(cast(ParkingStore, runner.store).reader(), after=after, limit=limit)
        return {"service": name, "parked": [p.to_dict() for p in parked], "count": runner.parked_count()}

    @router.post("/{sequence}/retry", **requires(SITE_ADMIN))
    async def retry_parked(request: Request, sequence: int) -> dict[str, Any]:
        """Apply a parked event again (e.g. after the event it was missing arrived); 409 with
        the new error when it still fails (it stays parked)."""
        runner, actor = await decide(request, RETRIED, sequence)
        still = parked_one(runner, sequence)
        if still is not None:
            raise Conflict(f"event {sequence} still cannot be applied: {still['error']}; "
                           "it stays parked (skip it, or retry once its cause is fixed)",
                           details={"parked": still})
        return {"service": name, "sequence": sequence, "retried": True, "actor": actor}

    @router.post("/{sequence}/skip", **requires(SITE_ADMIN))
    async def skip_parked(request: Request, sequence: int) -> dict[str, Any]:
        """Drop a parked event for good: the projection goes on without it."""
        _, actor = await decide(request, SKIPPED, sequence)
        return {"service": name, "sequence": sequence, "skipped": True, "actor": actor}

    return router
