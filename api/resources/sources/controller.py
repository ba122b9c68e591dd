"""HTTP handlers of the sources resource."""

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
from api.resources.sources import queries
from api.responses import json_document, json_page
from schemas.sources import Source, SourcePage


class SourceController(Controller):
    path = "/v1/sources"
    tags = ["sources"]

    @get(
        "/",
        operation_id="list_sources",
        summary="List sources",
        responses={200: ResponseSpec(SourcePage, description="A page of sources"), **PROBLEM_RESPONSES},
    )
    async def list_sources(
        self,
        conn: NamedDependency[asyncpg.Connection],
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="Page size")] = 50,
    ) -> Response[bytes]:
        rows = await conn.fetch(queries.LIST, limit)
        return json_document(json_page([r[0] for r in rows], None))

    @get(
        "/{record_id:uuid}",
        operation_id="get_source",
        summary="Get one source",
        responses={200: ResponseSpec(Source, description="The source"), **PROBLEM_RESPONSES},
    )
    async def get_source(
        self, conn: NamedDependency[asyncpg.Connection], record_id: FromPath[UUID]
    ) -> Response[bytes]:
        body = await conn.fetchval(queries.GET, record_id)
        if body is None:
            raise NotFound(f"No source with id {record_id}")
        return json_document(body)
