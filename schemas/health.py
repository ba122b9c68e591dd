"""Liveness and readiness."""

from __future__ import annotations

from typing import Literal

from msgspec import UNSET, UnsetType

from secevents.schemas.common import Base


class ReplicaHealth(Base, kw_only=True):
    """A read replica as the last health check saw it."""

    name: str
    """host:port of the replica."""
    state: Literal["up", "lagging", "down"]
    """``up``: serving reads; ``lagging`` (further behind than the configured bound) and
    ``down``: out of rotation, reads go to the primary meanwhile."""
    lag_bytes: int | None = None
    """How far its replayed WAL is behind the primary's (unknown while it is down)."""


class Health(Base, kw_only=True):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable", "not_checked"] = "not_checked"
    replicas: list[ReplicaHealth] | UnsetType = UNSET
    """The read replicas (``DATABASE_REPLICA_URL``); absent when none is configured. A replica out of
    rotation does not make the service unready: the primary answers its reads."""
