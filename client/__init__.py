"""The secevents SDK: a typed client of the secevents v1 API.

    from secevents import Client

    with Client(base_url="http://127.0.0.1:8000", api_key="...") as api:
        for incident in api.incidents.list(country="PK"):  # every page, fetched as needed
            print(incident.title, incident.casualties.killed)

``AsyncClient`` has the same methods (``await``, ``async for``). Records are the msgspec Structs
of ``schemas`` (shared with the server); requests take the ``*Create``/``*Patch`` Structs.
Failures raise the exceptions of :mod:`secevents._errors` (``from client import NotFoundError``…).
Needs only ``httpx`` and ``msgspec``: it imports nothing from the server (``api``).
"""

from secevents._constants import DEFAULT_BASE_URL, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from secevents._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    PreconditionRequiredError,
    RateLimitError,
    SecEventsError,
    ServerError,
    ValidationError,
)
from secevents._generated._client import AsyncClient, Client
from secevents._pagination import AsyncPage, AsyncPager, SyncPage
from secevents._response import APIResponse, AsyncStreamedResponse, StreamedResponse
from secevents._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "APIConnectionError",
    "APIError",
    "APIResponse",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncPage",
    "AsyncPager",
    "AsyncStreamedResponse",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "RateLimitError",
    "SecEventsError",
    "ServerError",
    "StreamedResponse",
    "SyncPage",
    "ValidationError",
    "__version__",
]
