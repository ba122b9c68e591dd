"""Request bodies: read within the route's limit, decoded once, validated strictly.

Runs as the ``before_request`` hook, that is after routing and after authentication, scope and
rate-limit checks (``secevents.server.http.auth``, a route middleware): a body is never read
for a request that is refused anyway, and never read past the route's limit — Litestar's
``request_max_body_size`` (1 MiB for writes) is checked against ``Content-Length`` before a byte
is read and counted while reading (413). Only then is it decoded, JSON or MessagePack alike:

- **Strictly, against the handler's Struct.** Litestar converts a body with ``strict=False``
  (it must, for query strings), which would take ``"retrieved_at": 0`` as 1970-01-01 and
  ``"lat": "1.5"`` as a number: values the documented schema refuses. Decoding into the Struct
  with ``strict=True`` first makes the API accept exactly what the OpenAPI document describes.
- **Nesting bounded by the schema.** A typed decode descends only as deep as the Struct does
  (no request Struct has an ``Any`` field), so ``[[[[…`` or ``b"\\x91" * 1000`` is a 400 at its
  first level instead of a ``RecursionError``.
- **Integers as JSON Schema counts them.** ``5.0`` is an integer for JSON Schema (a number with
  a zero fractional part); msgspec's strict mode refuses it, so such a body is decoded again
  with integral floats read as integers and validated strictly once more.
- **Off the event loop when large.** Bodies above :data:`THREAD_DECODE_BYTES` are decoded in a
  worker thread, so one large body does not stall every other request of the worker.

A MessagePack body (``Content-Type: application/msgpack``) is handed to Litestar as the decoded
value, so handlers, validation messages and idempotency fingerprints are the JSON ones.
Errors take Litestar's own validation path (one problem shape).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.utils.scope.state import ScopeState

from secevents.server.http.errors import InvalidBody
from secevents.server.http.msgpack import MSGPACK_TYPES

THREAD_DECODE_BYTES = 64 * 1024
"""Bodies larger than this are decoded in a thread (64 KiB decode in well under a millisecond;
a 1 MiB one takes a few)."""

_LOCATION = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_INTEGRAL_FLOAT = re.compile(r"^Expected `int[^`]*`, got `float`")
_KEEP = object()
"""Litestar may decode the body itself (a JSON body that validated as sent)."""


def _body_type(request: Request[Any, Any, Any]) -> type[msgspec.Struct] | None:
    field = request.route_handler.parsed_fn_signature.parameters.get("data")
    annotation = getattr(field, "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    return None


def is_msgpack(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() in MSGPACK_TYPES


async def decode_body(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: the body of a handler that takes a Struct, read, decoded and
    validated as described above; a body that does not fit it is a 400."""
    body_type = _body_type(request)
    if body_type is None:
        return
    body = await request.body()  # the route's limit applies here (cached for Litestar)
    msgpack = is_msgpack(request.headers.get("content-type"))
    if len(body) > THREAD_DECODE_BYTES:
        value = await asyncio.to_thread(_decode, body, body_type, msgpack)
    else:
        value = _decode(body, body_type, msgpack)
    if value is not _KEEP:
        ScopeState.from_scope(request.scope).json = value


def _decode(body: bytes, body_type: type[msgspec.Struct], msgpack: bool) -> Any:
    """The body as builtins for Litestar (or :data:`_KEEP`); raises the 400s."""
    decode: Any = msgspec.msgpack.decode if msgpack else msgspec.json.decode
    try:
        decode(body, type=body_type, strict=True)
    except msgspec.ValidationError as exc:
        if _INTEGRAL_FLOAT.match(str(exc)) is None:
            raise _invalid(exc) from exc
        value = _integral_floats_as_ints(_untyped(decode, body, msgpack))
        try:
            msgspec.convert(value, body_type, strict=True)
        except msgspec.ValidationError as again:
            raise _invalid(again) from again
        return value
    except msgspec.DecodeError as exc:
        if not msgpack:
            return _KEEP  # not JSON at all: Litestar's own parsing answers it (400)
        raise InvalidBody(f"not valid MessagePack: {exc}") from exc
    # Valid: the untyped value nests no deeper than the Struct it fits.
    return _untyped(decode, body, msgpack) if msgpack or len(body) > THREAD_DECODE_BYTES else _KEEP


def _untyped(decode: Any, body: bytes, msgpack: bool) -> Any:
    try:
        return decode(body)
    except RecursionError:
        raise InvalidBody("The body is nested too deeply.") from None
    except msgspec.DecodeError as exc:
        raise InvalidBody(f"not valid {'MessagePack' if msgpack else 'JSON'}: {exc}") from exc


def _integral_floats_as_ints(value: Any) -> Any:
    """``5.0`` → ``5`` at every depth (iteratively: the depth is the client's)."""
    pending: list[Any] = []

    def fix(item: Any) -> Any:
        if isinstance(item, float) and item.is_integer():
            return int(item)
        if isinstance(item, (list, dict)):
            pending.append(item)
        return item

    root = fix(value)
    while pending:
        container = pending.pop()
        if isinstance(container, list):
            for i, item in enumerate(container):
                container[i] = fix(item)
        else:
            for key, item in container.items():
                container[key] = fix(item)
    return root


def _invalid(exc: msgspec.ValidationError) -> ValidationException:
    message = str(exc)
    match = _LOCATION.search(message)
    field = (match.group("path") or "body") if match else "body"
    text = message[: match.start()] if match else message
    return ValidationException(
        detail="Validation failed for POST/PATCH body",
        extra=[{"key": field, "message": text, "source": "body"}],
    )
