"""API keys as the ``secevents keys`` command and the admin tools see them (never the secret,
except once in :class:`ApiKeyCreated`)."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from uuid import UUID

from secevents.schemas.common import Base

Scope = Literal["read", "write", "admin"]
"""``read`` < ``write`` < ``admin``: a key may do what its scope and every lower one allow."""


class ApiKeyInfo(Base, kw_only=True):
    id: UUID
    name: str
    prefix: str
    scopes: list[Scope]
    rate_limit: int | None = None
    created_at: dt.datetime
    last_used_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None


class ApiKeyCreated(ApiKeyInfo, kw_only=True):
    key: str
    """The full key, shown once: only a hash of its secret part is stored."""
