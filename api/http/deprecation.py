"""Deprecations: how an operation, a query parameter or a response field is marked deprecated,
and how clients hear of it.

Within v1 nothing is removed without notice. Marking something deprecated:

- an operation: ``@get(..., **deprecated(Deprecation(...)))``;
- a query parameter: ``@get(..., opt=deprecated_parameters(colour=Deprecation(...)))``;
- a response field: ``@get(..., opt=deprecated_fields(Struct, field=Deprecation(...)))``;

and then every response of that operation (for a parameter: every request that uses it) carries
``Deprecation`` (RFC 9745, the date as ``@<unix seconds>``), ``Sunset`` (RFC 8594, an HTTP date,
when a removal date is set) and ``Link: <…>; rel="deprecation"`` (the page that says what to use
instead). The OpenAPI document says ``deprecated: true`` on the operation, parameter or schema
property (:func:`document_deprecations`), so generated clients and the docs page show it, and the
SDK turns the header into a ``DeprecationWarning``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

OPERATION = "deprecation"
PARAMETERS = "deprecated_parameters"
FIELDS = "deprecated_fields"


@dataclass(frozen=True, slots=True)
class Deprecation:
    since: dt.date
    """When it became deprecated (``Deprecation``)."""
    link: str
    """A page that says what to use instead (``Link: <…>; rel="deprecation"``)."""
    sunset: dt.date | None = None
    """When it may stop working (``Sunset``); none yet when unset."""

    def headers(self) -> list[tuple[str, str]]:
        since = dt.datetime.combine(self.since, dt.time(), tzinfo=dt.UTC)
        headers = [
            ("Deprecation", f"@{int(since.timestamp())}"),
            ("Link", f'<{self.link}>; rel="deprecation"; type="text/html"'),
        ]
        if self.sunset is not None:
            sunset = dt.datetime.combine(self.sunset, dt.time(), tzinfo=dt.UTC)
            headers.append(("Sunset", format_datetime(sunset, usegmt=True)))
        return headers


def deprecated(deprecation: Deprecation) -> dict[str, Any]:
    """Route decorator arguments marking the whole operation deprecated."""
    return {"deprecated": True, "opt": {OPERATION: deprecation}}


def deprecated_parameters(**by_name: Deprecation) -> dict[str, Any]:
    """``opt`` of a route whose query parameters (by name) are deprecated."""
    return {PARAMETERS: by_name}


def deprecated_fields(struct: type, **by_name: Deprecation) -> dict[str, Any]:
    """``opt`` of a route whose response Struct has deprecated fields (by name)."""
    return {FIELDS: (struct.__name__, by_name)}


def _deprecations(scope: Scope) -> list[Deprecation]:
    opt: dict[str, Any] = getattr(scope.get("route_handler"), "opt", None) or {}
    found: list[Deprecation] = []
    if OPERATION in opt:
        found.append(opt[OPERATION])
    if PARAMETERS in opt:
        used = {
            name
            for name, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        }
        found += [d for name, d in opt[PARAMETERS].items() if name in used]
    if FIELDS in opt:
        found += list(opt[FIELDS][1].values())
    return found


async def announce_deprecations(message: Message, scope: Scope) -> None:
    """Litestar ``before_send`` hook: the headers of :class:`Deprecation` on a response of
    something deprecated (the earliest one when several apply)."""
    if message["type"] != "http.response.start":
        return
    found = _deprecations(scope)
    if not found:
        return
    first = min(found, key=lambda d: (d.sunset or dt.date.max, d.since))
    headers = MutableScopeHeaders(message)
    for name, value in first.headers():
        headers.add(name, value)


DEPRECATION_HEADERS = {
    "Deprecation": {
        "description": "RFC 9745: when this became deprecated (`@<unix seconds>`)",
        "schema": {"type": "string"},
    },
    "Sunset": {"description": "RFC 8594: when it may stop working", "schema": {"type": "string"}},
    "Link": {
        "description": 'RFC 8288: `<…>; rel="deprecation"`, what to use instead',
        "schema": {"type": "string"},
    },
}


def document_deprecations(app: Litestar, spec: dict[str, Any]) -> None:
    """OpenAPI post-processing: ``deprecated: true`` on each deprecated parameter and response
    field, and the deprecation headers on the responses of operations that may send them."""
    handlers: dict[str, HTTPRouteHandler] = {
        str(handler.operation_id): handler
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if handler.operation_id
    }
    schemas = spec.get("components", {}).get("schemas", {})
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            handler = handlers.get(operation.get("operationId", "")) if isinstance(operation, dict) else None
            opt = handler.opt if handler is not None else {}
            if not {OPERATION, PARAMETERS, FIELDS} & set(opt):
                continue
            for parameter in operation.get("parameters", ()):
                if parameter["in"] == "query" and parameter["name"] in opt.get(PARAMETERS, {}):
                    parameter["deprecated"] = True
            if FIELDS in opt:
                name, fields = opt[FIELDS]
                for field in fields:
                    schemas.get(name, {}).get("properties", {}).get(field, {})["deprecated"] = True
            for code, response in operation.get("responses", {}).items():
                if code.startswith("2"):
                    response.setdefault("headers", {}).update(DEPRECATION_HEADERS)
