"""MLflow-shaped errors: ``{"error_code": ..., "message": ...}``, so the MLflow client raises its
usual ``MlflowException``/``RestException`` with the error code it knows."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from cairn.kernel.errors import CairnError

# Cairn error code -> (MLflow error code, HTTP status)
CODES: dict[str, tuple[str, int]] = {
    "invalid_input": ("INVALID_PARAMETER_VALUE", 400),
    "bad_request": ("BAD_REQUEST", 400),
    "unauthorized": ("UNAUTHENTICATED", 401),
    "forbidden": ("PERMISSION_DENIED", 403),
    "not_found": ("RESOURCE_DOES_NOT_EXIST", 404),
    "already_exists": ("RESOURCE_ALREADY_EXISTS", 400),
    "conflict": ("INVALID_PARAMETER_VALUE", 400),
    "concurrent_modification": ("ABORTED", 409),
    "payload_too_large": ("REQUEST_LIMIT_EXCEEDED", 413),
    "rate_limited": ("REQUEST_LIMIT_EXCEEDED", 429),
    "unavailable": ("TEMPORARILY_UNAVAILABLE", 503),
    "bad_gateway": ("INTERNAL_ERROR", 502),
}


class MlflowError(CairnError):
    """An error raised with an MLflow error code directly (no Cairn equivalent)."""

    def __init__(self, error_code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.status = status


class ServiceError(CairnError):
    """A Cairn error body returned by a service, re-raised in the gateway with its code and status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def invalid(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message)


def not_found(message: str) -> MlflowError:
    return MlflowError("RESOURCE_DOES_NOT_EXIST", message, 404)


def mlflow_error_response(err: CairnError) -> JSONResponse:
    if isinstance(err, MlflowError):
        code, status = err.error_code, err.status
    else:
        code, status = CODES.get(err.code, ("INTERNAL_ERROR", err.status if err.status >= 500 else 400))
    return JSONResponse({"error_code": code, "message": err.message}, status_code=status)
