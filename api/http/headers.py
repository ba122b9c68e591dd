"""Request headers read straight from the ASGI scope: one header costs a scan of a short list,
where ``request.headers`` builds a multi-dict of them all (a few microseconds per request on
the read path, which reads three or four of them)."""

from __future__ import annotations

from typing import Any


def scope_header(scope: Any, name: bytes) -> str | None:
    """The first value of the request header ``name`` (lower case, as ASGI gives names), as
    Latin-1 text; None when the request does not send it."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None
