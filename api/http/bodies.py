"""Request bodies are validated strictly.

Litestar converts a decoded body into the handler's Struct with ``strict=False`` (it must, for
query strings), which would take ``"retrieved_at": 0`` as 1970-01-01 and ``"lat": "1.5"`` as a
number: values the documented schema refuses. This hook decodes the body once more with
``strict=True`` against the same Struct before the handler runs, so the API accepts exactly what
the OpenAPI document describes. Errors take Litestar's own validation path (one problem shape).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

_LOCATION = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


def _body_type(request: Request[Any, Any, Any]) -> type[msgspec.Struct] | None:
    field = request.route_handler.parsed_fn_signature.parameters.get("data")
    annotation = getattr(field, "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    return None


async def validate_body_strictly(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: a body whose values only fit the Struct after coercion is a 400."""
    body_type = _body_type(request)
    if body_type is None:
        return
    body = await request.body()  # cached: Litestar's own parsing reuses it
    try:
        msgspec.json.decode(body, type=body_type, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _LOCATION.search(message)
        field = (match.group("path") or "body") if match else "body"
        text = message[: match.start()] if match else message
        raise ValidationException(
            detail="Validation failed for POST/PATCH body",
            extra=[{"key": field, "message": text, "source": "body"}],
        ) from exc
    except msgspec.DecodeError:
        return  # not JSON at all: Litestar's own parsing answers it
