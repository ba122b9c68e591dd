"""HTTP handlers of the incidents resource."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import asyncpg
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from api.errors import NotFound
from api.openapi import PROBLEM_RESPONSES
from api.resources.incidents import queries
from api.responses import json_document, json_page
from schemas.incidents import Incident, IncidentPage


class IncidentController(Controller):
    path = "/v1/incidents"
    tags = ["incidents"]

    @get(
        "/",
        operation_id="list_incidents",
        summary="List incidents",
        responses={200: ResponseSpec(IncidentPage, description="A page of incidents"), **PROBLEM_RESPONSES},
    )
    async def list_incidents(
        self,
        conn: NamedDependency[asyncpg.Connection],
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="Page size")] = 50,
    ) -> Response[bytes]:
        rows = await conn.fetch(queries.LIST, limit)
        return json_document(json_page([r[0] for r in rows], None))

    @get(
        "/{record_id:uuid}",
        operation_id="get_incident",
        summary="Get one incident",
        responses={200: ResponseSpec(Incident, description="The incident"), **PROBLEM_RESPONSES},
    )
    async def get_incident(
        self, conn: NamedDependency[asyncpg.Connection], record_id: FromPath[UUID]
    ) -> Response[bytes]:
        body = await conn.fetchval(queries.GET, record_id)
        if body is None:
            raise NotFound(f"No incident with id {record_id}")
        return json_document(body)
