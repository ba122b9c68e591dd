"""Security headers on every response, and CORS only when configured.

API responses get a CSP that allows nothing (``default-src 'none'``): a JSON body opened in a
browser can run no script. The ``/docs`` page (``secevents.server.system.docs``) sets its own policy, which allows
scripts and styles from this origin only; its assets are served locally. No ``Server`` or
``X-Powered-By`` header leaves the app.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from secevents.server.settings import ApiSettings

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

COMMON_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-site"),
    # Responses that set their own policy (the /docs page, secevents.server.system.docs) keep it.
    (b"content-security-policy", API_CSP.encode()),
]
# Headers that would tell an attacker what runs here.
_HIDDEN = {b"server", b"x-powered-by"}


def with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() not in _HIDDEN]
    present = {k.lower() for k, _ in kept}
    return kept + [(k, v) for k, v in COMMON_HEADERS if k not in present]


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (installed around the whole app, so
    404s for unknown paths and refused requests get them too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(message["headers"])
            await send(message)

        await self.app(scope, receive, send_with_headers)


def cors_config(settings: ApiSettings) -> CORSConfig | None:
    """CORS is off (no ``Access-Control-*`` headers at all) unless origins are configured."""
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=[
            "authorization",
            "content-type",
            "if-match",
            "if-none-match",
            "idempotency-key",
            "x-request-id",
            "secevents-read-after",
        ],
        expose_headers=[
            "etag",
            "link",
            "location",
            "retry-after",
            "ratelimit",
            "ratelimit-policy",
            "x-request-id",
            "secevents-read-after",
        ],
        allow_credentials=False,
        max_age=600,
    )
