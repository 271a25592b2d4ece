"""One error tree for the whole platform, translated to HTTP once, at the edge.

Every error carries a stable ``code`` and a message that says what was wrong and what to do.
"""

from __future__ import annotations

from typing import Any


class CairnError(Exception):
    """Base of every error Cairn raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(CairnError):
    """The request is malformed or breaks a rule; nothing was changed."""

    status = 422
    code = "invalid_input"


class BadRequest(CairnError):
    status = 400
    code = "bad_request"


class Unauthorized(CairnError):
    status = 401
    code = "unauthorized"


class Forbidden(CairnError):
    status = 403
    code = "forbidden"


class NotFound(CairnError):
    status = 404
    code = "not_found"


class AlreadyExists(CairnError):
    status = 409
    code = "already_exists"


class Conflict(CairnError):
    """The command contradicts the current state (e.g. changing an immutable param)."""

    status = 409
    code = "conflict"


class ConcurrencyConflict(Conflict):
    """Another writer changed the aggregate first and retries did not get through."""

    code = "concurrent_modification"


class PayloadTooLarge(CairnError):
    status = 413
    code = "payload_too_large"


class Unavailable(CairnError):
    status = 503
    code = "unavailable"


class NotLeader(Unavailable):
    """A singleton's action refused because this process no longer holds the singleton's lease
    (another replica took it, or this one was paused past it): the current leader acts instead."""

    code = "not_leader"


def nats_unavailable() -> tuple[type[Exception], ...]:
    """NATS errors that mean "not now" rather than "wrong": no stream leader for a moment (its node
    died, an election runs), no responder, no answer in time. A request that meets one is a 503
    with ``Retry-After`` (sent again with its Idempotency-Key, it appends at most once), not a 500."""
    from nats import errors as nats_errors
    from nats.js.errors import NoStreamResponseError

    return (NoStreamResponseError, nats_errors.NoRespondersError, nats_errors.TimeoutError)


class ConfigurationError(CairnError):
    """A process was started with settings it cannot run with (a missing or unreadable file, a
    port in use); the message names the setting and what to change. Raised at start, never for a
    request."""

    code = "configuration"


class EventOutOfOrder(CairnError):
    """An event for an aggregate whose creating event the log does not have before it (written
    straight onto the log, or by a buggy writer). Raised by evolve functions; a projection parks
    the event (``cairn.kernel.parking``) and an admin retries it once the aggregate exists."""

    status = 409
    code = "event_out_of_order"


class MissingPackage(ConfigurationError):
    """A model's flavour needs a Python package this machine does not have; the message names the
    package to install (``pip install onnxruntime``), so the fix is one command, not a traceback."""

    status = 422
    code = "missing_package"

    def __init__(self, flavour: str, package: str) -> None:
        super().__init__(f"the {flavour} flavour needs the {package!r} package: pip install {package}",
                         details={"flavour": flavour, "package": package})
        self.package = package


class BackupError(CairnError):
    """A backup that cannot be taken or restored (cairn.cluster.backup): a corrupted or missing
    file, a stream the server already has, a server that refused; the message names which. Raised
    by ``cairn backup``, never for a request."""

    code = "backup"


class MissingFramework(MissingPackage):
    """A framework integration (``cairn.integrations``) was used without its framework installed;
    the message names the package to install, like :class:`MissingPackage` does for flavours."""

    def __init__(self, integration: str, package: str) -> None:
        ConfigurationError.__init__(self, f"the {integration} integration needs the {package!r} package: "
                                          f"pip install {package}",
                                    details={"integration": integration, "package": package})
        self.package = package
