"""The error hierarchy. Every error a client can cause maps to one JSON shape:

``{"error": {"code": "...", "message": "...", "details": {...}}}``

with a 4xx status; validation errors name the field in ``details.field``.
"""

from __future__ import annotations

from typing import Any


class CCMError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})
        if field is not None:
            self.details["field"] = field

    def under(self, prefix: str) -> CCMError:
        """The same error about a field nested under ``prefix`` (``phone`` → ``to.phone``)."""
        field = self.details.get("field")
        if not field or field == prefix or field.startswith(prefix + "."):
            return self
        nested = type(self)(f"{prefix}.{self.message}", details={**self.details, "field": f"{prefix}.{field}"})
        nested.status, nested.code = self.status, self.code
        return nested

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationFailed(CCMError):
    status = 422
    code = "validation_failed"


class NotFound(CCMError):
    status = 404
    code = "not_found"


class Unauthorized(CCMError):
    status = 401
    code = "unauthorized"


class Conflict(CCMError):
    status = 409
    code = "conflict"


class IdempotencyKeyReused(CCMError):
    status = 422
    code = "idempotency_key_reused"


class PayloadTooLarge(CCMError):
    status = 413
    code = "payload_too_large"


class ServiceUnavailable(CCMError):
    """A backing service (the database) cannot be reached: nothing was changed; retry later."""

    status = 503
    code = "unavailable"
    retry_after = 5


class Forbidden(CCMError):
    """The API key is valid but its role may not do this."""

    status = 403
    code = "forbidden"
