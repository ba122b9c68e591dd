"""Every error the API answers with, mapped to RFC 9457 problem details in one place.

Domain code raises :class:`DomainError` subclasses; Litestar's own exceptions (validation,
404 for unknown routes, 405, 406, 415, body too large…) and database errors (by SQLSTATE) are
translated here too, so every 4xx/5xx body is ``application/problem+json`` with a stable
``code``. 5xx bodies never carry SQL or tracebacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args, get_origin

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.typing import FieldDefinition

from secevents.schemas.problems import FieldError, Problem

log = logging.getLogger("secevents.errors")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "2"


class DomainError(Exception):
    """Base of the errors the API raises on purpose."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})


class InvalidParameter(DomainError):
    status, code, title = 400, "invalid_parameter", "Invalid query parameter"

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}", errors=[FieldError(field=parameter, message=message)])


class InvalidHeader(DomainError):
    status, code, title = 400, "invalid_header", "Invalid request header"


class InvalidBody(DomainError):
    status, code, title = 400, "invalid_body", "Invalid request body"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="secevents"'})


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class PreconditionFailed(DomainError):
    status, code, title = 412, "precondition_failed", "Precondition failed"


class UnprocessableEntity(DomainError):
    status, code, title = 422, "unprocessable_entity", "Unprocessable entity"


class PreconditionRequired(DomainError):
    status, code, title = 428, "precondition_required", "Precondition required"


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "Service unavailable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": RETRY_AFTER_SECONDS})


# Litestar's HTTP exceptions by status → stable codes.
_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    408: ("request_timeout", "Request timeout"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("rate_limited", "Too many requests"),
    500: ("internal_error", "Internal server error"),
    503: ("service_unavailable", "Service unavailable"),
}


def http_problem_code(status: int) -> tuple[str, str]:
    """The stable ``code`` and title of an HTTP status (``http_error`` for the unmapped ones)."""
    return _HTTP_CODES.get(status, ("http_error", "HTTP error"))


# Connection-level failures: the database is down or unreachable, not the request's fault.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
    # A connection whose server went away mid-operation can be left in a state where asyncpg
    # refuses the next operation ("cannot switch to state …"): the connection is unusable, the
    # request is not at fault.
    asyncpg.exceptions._base.InternalClientError,
)


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    request_id = request.scope.get("state", {}).get("request_id")
    problem = Problem(
        title=title,
        status=status,
        code=code,
        detail=detail,
        instance=request.url.path,
        request_id=request_id,
        errors=list(errors) if errors else None,
    )
    return Response(
        content=msgspec.json.encode(problem),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def _domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        errors=exc.errors,
        headers=exc.headers,
    )


def _validation_errors(request: Request[Any, Any, Any], extra: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, Mapping):
                key = str(item.get("key") or item.get("source") or "body")
                message = str(item.get("message", "invalid value"))
                parameter = _parameter(request, key)
                if parameter is not None:
                    if message.startswith("Invalid enum value") and (
                        choices := _literal_values(parameter.annotation)
                    ):
                        message += f"; valid values: {', '.join(choices)}"
                    key = _wire_name(parameter, key)
                errors.append(FieldError(field=key, message=message))
    return errors


def _parameter(request: Request[Any, Any, Any], name: str) -> FieldDefinition | None:
    """The parameter a validation error names (by its Python name), from the signature of the
    handler or of the dependency that declares it (the filters)."""
    handler = request.scope["route_handler"]
    signatures = [handler.parsed_fn_signature]
    signatures += [provider.parsed_fn_signature for provider in handler.resolve_dependencies().values()]
    for signature in signatures:
        parameter = signature.parameters.get(name)
        if parameter is not None:
            return parameter
    return None


def _wire_name(parameter: FieldDefinition, name: str) -> str:
    """The name the request spells (``format``), where the handler's differs (``export_format``)."""
    kwarg = parameter.kwarg_definition
    aliases = (getattr(kwarg, attribute, None) for attribute in ("query", "header", "name"))
    return next((str(alias) for alias in aliases if alias), name)


def _literal_values(annotation: Any) -> list[str]:
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    for argument in get_args(annotation):
        if values := _literal_values(argument):
            return values
    return []


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    code, title = _HTTP_CODES.get(status, ("http_error", "HTTP error"))
    headers = dict(exc.headers or {})
    if status >= 500:
        log.error("HTTP %s on %s %s: %s", status, request.method, request.url.path, exc.detail)
        return problem_response(request, status=status, code=code, title=title, headers=headers)
    if isinstance(exc, ValidationException):
        errors = _validation_errors(request, exc.extra)
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or exc.detail
        return problem_response(
            request,
            status=400,
            code="invalid_request",
            title="Invalid request",
            detail=detail,
            errors=errors,
            headers=headers,
        )
    return problem_response(
        request, status=status, code=code, title=title, detail=exc.detail, headers=headers
    )


# SQLSTATE classes of errors that the input caused (constraint or data errors the Structs did
# not catch first); everything else from the database is the server's problem.
_SQLSTATE_PROBLEMS: dict[str, tuple[int, str, str]] = {
    "23505": (409, "conflict", "Conflict with an existing record"),
    "23503": (422, "reference_not_found", "A referenced record does not exist"),
    "23514": (422, "constraint_violation", "The record breaks a rule of the data model"),
    "23502": (422, "constraint_violation", "A required value is missing"),
    "22001": (400, "invalid_value", "A value is too long"),
    "22003": (400, "invalid_value", "A number is out of range"),
    "22007": (400, "invalid_value", "Invalid date or time"),
    "22008": (400, "invalid_value", "Date or time out of range"),
    "22P02": (400, "invalid_value", "Invalid value"),
    "2201B": (400, "invalid_value", "Invalid regular expression"),
    "22021": (400, "invalid_value", "Invalid character"),
    "57014": (503, "statement_timeout", "The query took too long"),
    "55P03": (503, "lock_timeout", "The record is busy"),
    "40001": (503, "serialization_failure", "Concurrent update; retry"),
    "40P01": (503, "deadlock", "Concurrent update; retry"),
    "53300": (503, "service_unavailable", "Too many database connections"),
}


def _postgres_error(request: Request[Any, Any, Any], exc: asyncpg.PostgresError) -> Response[bytes]:
    sqlstate = getattr(exc, "sqlstate", None) or ""
    mapped = _SQLSTATE_PROBLEMS.get(sqlstate)
    if mapped is None:
        if sqlstate.startswith(("08", "57P")):
            return _connection_error(request, exc)
        log.exception("database error %s on %s %s", sqlstate, request.method, request.url.path, exc_info=exc)
        return problem_response(
            request,
            status=500,
            code="internal_error",
            title="Internal server error",
        )
    status, code, title = mapped
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else {}
    # Constraint names are part of the documented schema, so naming them helps; the message and
    # the SQL are not shown.
    constraint = getattr(exc, "constraint_name", None)
    detail = f"{title} ({constraint})" if constraint and status < 500 else title
    return problem_response(request, status=status, code=code, title=title, detail=detail, headers=headers)


def _connection_error(request: Request[Any, Any, Any], exc: BaseException) -> Response[bytes]:
    log.warning("database unavailable on %s %s: %r", request.method, request.url.path, exc)
    return problem_response(
        request,
        status=503,
        code="database_unavailable",
        title="Service unavailable",
        detail="The database is unavailable; retry later.",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, CONNECTION_ERRORS):
        return _connection_error(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request,
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        code="internal_error",
        title="Internal server error",
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    DomainError: _domain_error,
    HTTPException: _http_exception,
    asyncpg.PostgresError: _postgres_error,
    Exception: _unexpected,
}


# Vocabulary of the handlers' OpenAPI descriptions: the problem responses they declare.
def problem(description: str) -> ResponseSpec:
    return ResponseSpec(Problem, description=description, media_type="application/problem+json")


# Every read can fail these ways; handlers add their own (404, 412, …) on top.
PROBLEM_RESPONSES: dict[int, ResponseSpec] = {
    400: problem("Invalid query parameter or request"),
    404: problem("No such record or route"),
    503: problem("The database is unavailable; retry after `Retry-After` seconds"),
}
