"""Domain errors shared by the API and the CLI. The API maps them to ``{"error": {"code", "message"}}``
with the status below; the CLI prints the message on one line and exits non-zero."""

from __future__ import annotations


class SfaiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidInput(SfaiError):
    status = 422
    code = "invalid_input"


class NotFound(SfaiError):
    status = 404
    code = "not_found"


class Conflict(SfaiError):
    status = 409
    code = "conflict"


class Unauthenticated(SfaiError):
    status = 401
    code = "unauthenticated"


class Forbidden(SfaiError):
    status = 403
    code = "forbidden"


class NotSubscribed(Forbidden):
    code = "not_subscribed"


class QuotaExceeded(SfaiError):
    status = 429
    code = "quota_exceeded"


class Unavailable(SfaiError):
    status = 503
    code = "unavailable"
