"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from msgspec import UNSET, UnsetType

from secevents.schemas.health import Health, ReplicaHealth
from secevents.server import db
from secevents.server.http.errors import CONNECTION_ERRORS, RETRY_AFTER_SECONDS
from secevents.server.replicas import Replicas

READY_TIMEOUT = 2.0
NO_STORE = {"Cache-Control": "no-store"}


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", operation_id="health_live", summary="The process is up")
    async def live(self) -> Response[Health]:
        return Response(content=Health(status="ok"), headers=NO_STORE)

    @get(
        "/ready",
        operation_id="health_ready",
        summary="The service can answer requests (its database is reachable)",
        responses={503: ResponseSpec(Health, description="The database is unreachable")},
    )
    async def ready(self, request: Request[Any, Any, Any], state: State) -> Response[Health]:
        pool: asyncpg.Pool = state.pool
        held = db.held_connections(request.scope)  # so that the request timeout can drop it
        try:
            conn = await held.acquire(pool, READY_TIMEOUT)
            try:
                await conn.fetchval("SELECT 1", timeout=READY_TIMEOUT)
            finally:
                await held.release(pool, conn)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError):
            return Response(
                content=Health(status="unavailable", database="unavailable"),
                status_code=503,
                headers={**NO_STORE, "Retry-After": RETRY_AFTER_SECONDS},
            )
        return Response(
            content=Health(status="ok", database="ok", replicas=_replicas(state)), headers=NO_STORE
        )


def _replicas(state: State) -> list[ReplicaHealth] | UnsetType:
    replicas: Replicas | None = state.get("replicas")
    if replicas is None:
        return UNSET
    return [ReplicaHealth(name=m.name, state=m.state, lag_bytes=m.lag_bytes) for m in replicas.members]  # type: ignore[arg-type]
