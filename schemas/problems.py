"""RFC 9457 problem details, the body of every 4xx and 5xx."""

from __future__ import annotations

from secevents.schemas.common import Base


class FieldError(Base, kw_only=True):
    field: str
    message: str


class Problem(Base, kw_only=True):
    """``application/problem+json``. ``code`` is stable: branch on it, not on ``title``."""

    type: str = "about:blank"
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None
