"""The exceptions the SDK raises. Every one derives from :class:`SecEventsError`::

    SecEventsError                  anything this SDK raises on purpose
    └── APIError                    something went wrong talking to the API (``.request``)
        ├── APIConnectionError      no response: DNS, refused connection, reset, TLS…
        │   └── APITimeoutError     no response within ``timeout``
        ├── APIResponseValidationError
        │                           a 2xx response whose body is not what the spec promises
        └── APIStatusError          a 4xx/5xx answer (``.status_code``, ``.problem``,
            │                       ``.request_id``, ``.response``, ``.headers``)
            ├── ValidationError             400, 422: the request was invalid
            ├── AuthenticationError         401: no or unknown API key
            ├── PermissionDeniedError       403: the key lacks a scope
            ├── NotFoundError               404
            ├── ConflictError               409: duplicate, or the same Idempotency-Key in flight
            ├── PreconditionFailedError     412: ``if_match`` names a stale version
            ├── PreconditionRequiredError   428: the write needs ``if_match``
            ├── RateLimitError              429 (``.retry_after`` seconds, when given)
            └── ServerError                 5xx

Connection errors, timeouts, 408, 429, 5xx and a 409 with ``Retry-After`` (the same
Idempotency-Key still in flight) are retried (``max_retries``, exponential backoff with jitter,
or ``Retry-After``) before they are raised.
Branch on ``problem.code`` (stable) rather than on messages.
"""

from __future__ import annotations

import httpx

from secevents._retries import parse_retry_after
from secevents.schemas.problems import Problem

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "RateLimitError",
    "SecEventsError",
    "ServerError",
    "ValidationError",
]


class SecEventsError(Exception):
    """Base of every exception this SDK raises."""


class APIError(SecEventsError):
    """A request to the API failed. ``request`` is the last attempt's request."""

    def __init__(self, message: str, *, request: httpx.Request) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APIConnectionError(APIError):
    """No response arrived (after every retry)."""

    def __init__(self, *, request: httpx.Request, message: str = "Connection error.") -> None:
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    """No response arrived within the timeout (after every retry)."""

    def __init__(self, *, request: httpx.Request) -> None:
        super().__init__(request=request, message="Request timed out.")


class APIResponseValidationError(APIError):
    """The API answered 2xx with a body that does not decode into the promised type."""

    def __init__(self, message: str, *, response: httpx.Response) -> None:
        super().__init__(message, request=response.request)
        self.response = response
        self.status_code = response.status_code


class APIStatusError(APIError):
    """The API answered with a 4xx or 5xx status and (normally) RFC 9457 problem details."""

    def __init__(self, message: str, *, response: httpx.Response, problem: Problem | None) -> None:
        super().__init__(message, request=response.request)
        self.response = response
        self.status_code = response.status_code
        self.problem = problem
        self.headers = response.headers
        self.request_id: str | None = response.headers.get("x-request-id") or (
            problem.request_id if problem is not None else None
        )

    @property
    def code(self) -> str | None:
        """The problem's stable ``code`` (``"not_found"``, ``"precondition_failed"``…)."""
        return self.problem.code if self.problem is not None else None


class ValidationError(APIStatusError):
    """400 or 422: ``problem.errors`` lists ``{field, message}``."""


class AuthenticationError(APIStatusError):
    """401."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404."""


class ConflictError(APIStatusError):
    """409."""


class PreconditionFailedError(APIStatusError):
    """412: someone else changed the record since the version given in ``if_match``."""


class PreconditionRequiredError(APIStatusError):
    """428: the server requires ``if_match`` on this write."""


class RateLimitError(APIStatusError):
    """429. ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one."""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers)


class ServerError(APIStatusError):
    """5xx."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    422: ValidationError,
    428: PreconditionRequiredError,
    429: RateLimitError,
}


def error_class_for(status: int) -> type[APIStatusError]:
    if status >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status, APIStatusError)
