"""HTTP handlers of the organisations resource."""

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
from api.resources.organisations import queries
from api.responses import json_document, json_page
from schemas.organisations import Organisation, OrganisationPage


class OrganisationController(Controller):
    path = "/v1/organisations"
    tags = ["organisations"]

    @get(
        "/",
        operation_id="list_organisations",
        summary="List organisations",
        responses={
            200: ResponseSpec(OrganisationPage, description="A page of organisations"),
            **PROBLEM_RESPONSES,
        },
    )
    async def list_organisations(
        self,
        conn: NamedDependency[asyncpg.Connection],
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="Page size")] = 50,
    ) -> Response[bytes]:
        rows = await conn.fetch(queries.LIST, limit)
        return json_document(json_page([r[0] for r in rows], None))

    @get(
        "/{record_id:uuid}",
        operation_id="get_organisation",
        summary="Get one organisation",
        responses={200: ResponseSpec(Organisation, description="The organisation"), **PROBLEM_RESPONSES},
    )
    async def get_organisation(
        self, conn: NamedDependency[asyncpg.Connection], record_id: FromPath[UUID]
    ) -> Response[bytes]:
        body = await conn.fetchval(queries.GET, record_id)
        if body is None:
            raise NotFound(f"No organisation with id {record_id}")
        return json_document(body)
