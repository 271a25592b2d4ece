"""HTTP glue shared by every service: one JSON error shape, the request context, settings."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import CairnError, Unavailable, nats_unavailable
from cairn.kernel.identity import current_caller
from cairn.kernel.ids import PATTERN_RULES, new_id
from cairn.kernel.telemetry import current_traceparent

log = logging.getLogger(__name__)

def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "[key]")]
    return ".".join(parts) or "(body)"


def _message(error: Any) -> str:
    """pydantic's message, but a shared name rule in words rather than as its regex."""
    rule = PATTERN_RULES.get((error.get("ctx") or {}).get("pattern", ""))
    what = "the key " if tuple(error.get("loc", ()))[-1:] == ("[key]",) else ""  # a dict's key, not its value
    if error.get("type") == "string_pattern_mismatch" and rule is not None:
        return f"{what}{str(error.get('input'))[:80]!r} is not valid: use {rule}"
    return what + str(error.get("msg", ""))


def validation_error_body(errors: Sequence[Any]) -> dict[str, Any]:
    """pydantic's complaints as our 422 body: the first one in the message, every one in details."""
    problems = [{"field": _field(tuple(e.get("loc", ()))), "message": _message(e)} for e in errors]
    first = problems[0] if problems else {"field": "(body)", "message": "invalid"}
    message = f"{first['field']}: {first['message']}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem(s))"
    return error_body("invalid_input", message, {"problems": problems})


def install_error_handlers(app: FastAPI) -> None:
    """Map the error tree, validation errors and HTTP errors to ``{"error": {...}}``."""

    @app.exception_handler(CairnError)
    async def _cairn_error(_: Request, err: CairnError) -> JSONResponse:
        if err.status >= 500:
            log.error("error code=%s message=%s", err.code, err.message)
        headers = {"Retry-After": str(err.details["retry_after"])} if "retry_after" in err.details else None
        return JSONResponse(err.to_body(), status_code=err.status, headers=headers)

    for nats_error in nats_unavailable():  # the event log for a moment (tests/cluster/test_failures.py)
        @app.exception_handler(nats_error)
        async def _nats_unavailable(request: Request, err: Exception) -> JSONResponse:
            return await _cairn_error(request, Unavailable(
                f"the event log did not answer ({type(err).__name__}): it is electing a leader or "
                "reconnecting; retry", details={"retry_after": 1}))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_error_body(err.errors()), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return JSONResponse(error_body(code, str(err.detail)), status_code=err.status_code,
                            headers=getattr(err, "headers", None))


async def command_context(
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    x_request_id: Annotated[str | None, Header(max_length=200)] = None,
    traceparent: Annotated[str | None, Header(max_length=200)] = None,
) -> CommandContext:
    """Who is asking (the signed caller), the idempotency key and the correlation id."""
    return CommandContext(
        actor=(await current_caller(request)).actor,
        idempotency_key=idempotency_key,
        correlation_id=x_request_id or new_id(),
        traceparent=current_traceparent() or traceparent,
    )
