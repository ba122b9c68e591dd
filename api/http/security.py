"""Security headers on every response, and CORS only when configured.

API responses get a CSP that allows nothing (``default-src 'none'``): a JSON body opened in a
browser can run no script. The ``/docs`` page (``secevents.server.system.docs``) sets its own policy, which allows
scripts and styles from this origin only; its assets are served locally. No ``Server`` or
``X-Powered-By`` header leaves the app.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar.config.cors import CORSConfig

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
    """A new list: ``headers`` without those that would tell what runs here, with the security
    headers they do not set themselves. Added to every HTTP response by the edge layer
    (:mod:`secevents.server.http.edge`), around the whole app: 404s for unknown paths and refused
    requests get them too."""
    kept = [(k, v) for k, v in headers if k.lower() not in _HIDDEN]
    present = {k.lower() for k, _ in kept}
    return kept + [(k, v) for k, v in COMMON_HEADERS if k not in present]


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
