"""HTTP handlers of the statements resource."""

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
from api.resources.statements import queries
from api.responses import json_document, json_page
from schemas.statements import Statement, StatementPage


class StatementController(Controller):
    path = "/v1/statements"
    tags = ["statements"]

    @get(
        "/",
        operation_id="list_statements",
        summary="List statements",
        responses={200: ResponseSpec(StatementPage, description="A page of statements"), **PROBLEM_RESPONSES},
    )
    async def list_statements(
        self,
        conn: NamedDependency[asyncpg.Connection],
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="Page size")] = 50,
    ) -> Response[bytes]:
        rows = await conn.fetch(queries.LIST, limit)
        return json_document(json_page([r[0] for r in rows], None))

    @get(
        "/{record_id:uuid}",
        operation_id="get_statement",
        summary="Get one statement",
        responses={200: ResponseSpec(Statement, description="The statement"), **PROBLEM_RESPONSES},
    )
    async def get_statement(
        self, conn: NamedDependency[asyncpg.Connection], record_id: FromPath[UUID]
    ) -> Response[bytes]:
        body = await conn.fetchval(queries.GET, record_id)
        if body is None:
            raise NotFound(f"No statement with id {record_id}")
        return json_document(body)
