"""The API's error tree; one middleware (``hub.web.middleware``) renders each as DESIGN's error shape.

::

    HubError                      {"success": false, "code": N, "error": "...", "details": {...}}
    ├── BadRequest          400   malformed JSON or query
    ├── Unauthorized        401   missing, malformed or revoked key / signature
    ├── NotFound            404   unknown id (also another organization's id)
    ├── RequestTimeout      408   the body did not arrive in time (slow client); the connection is closed
    ├── Conflict            409   idempotency key reused with another body, duplicate name
    ├── PayloadTooLarge     413   body over the limit
    ├── ValidationFailed    422   a field is missing, malformed or out of range (``details`` names it)
    ├── RateLimited         429   ``Retry-After`` set
    └── Unavailable         503   Postgres or Redis down: nothing was stored
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Base of every error the API answers deliberately."""

    status = 500
    error = "Internal server error"

    def __init__(self, error: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        self.error = error or type(self).error
        self.details = details or {}
        super().__init__(self.error)


class BadRequest(HubError):
    status, error = 400, "Bad request"


class Unauthorized(HubError):
    status, error = 401, "Unauthorized"


class NotFound(HubError):
    status, error = 404, "Not found"


class MethodNotAllowed(HubError):
    status, error = 405, "Method not allowed"


class RequestTimeout(HubError):
    status, error = 408, "Request timeout"


class Conflict(HubError):
    status, error = 409, "Conflict"


class PayloadTooLarge(HubError):
    status, error = 413, "Payload too large"


class ValidationFailed(HubError):
    status, error = 422, "Validation failed"


class RateLimited(HubError):
    status, error = 429, "Too many requests"

    def __init__(self, retry_after: int, error: str | None = None) -> None:
        super().__init__(error, details={"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(HubError):
    status, error = 503, "Service unavailable"
