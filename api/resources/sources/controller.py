"""HTTP handlers of the sources resource."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import asyncpg
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from secevents.schemas.sources import Source, SourceCreate, SourcePage, SourcePatch
from secevents.server.http.auth import WRITE_SECURITY, Principal
from secevents.server.http.responses import EncodedResponse
from secevents.server.reads.filters import Cursor, Limit
from secevents.server.reads.listing import (
    PAGE_HEADERS,
    READ_HEADERS,
    list_response,
    read_responses,
    record_response,
)
from secevents.server.resources.sources import queries
from secevents.server.resources.sources.filters import SourceFilters, provide_source_filters
from secevents.server.settings import Settings
from secevents.server.writes import flows


class SourceController(Controller):
    path = "/v1/sources"
    tags = ["sources"]

    @get(
        "/",
        operation_id="list_sources",
        summary="List sources",
        description="Filters combine with AND; a repeated parameter means OR. Keyset pages: follow "
        "`next_cursor` (or the `Link` header).",
        responses=read_responses(SourcePage, "A page of sources"),
        response_headers=PAGE_HEADERS,
        dependencies={"filters": Provide(provide_source_filters, sync_to_thread=False)},
    )
    async def list_sources(
        self,
        request: Request[Any, Any, Any],
        filters: NamedDependency[SourceFilters],
        sort: Annotated[queries.SourceSort, QueryParameter(description="Sort order")] = "-created",
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> EncodedResponse:
        order = queries.SORTS[sort]
        return await list_response(
            request,
            resource="sources",
            sort=order,
            limit=limit,
            cursor=cursor,
            query=lambda after: queries.list_query(filters, order, after, limit),
        )

    @get(
        "/{record_id:uuid}",
        operation_id="get_source",
        summary="Get one source",
        responses=read_responses(Source, "The source"),
        response_headers=READ_HEADERS,
    )
    async def get_source(
        self,
        request: Request[Any, Any, Any],
        record_id: FromPath[UUID],
    ) -> EncodedResponse:
        return await record_response(
            request,
            sql=queries.READ,
            record_id=record_id,
            missing=f"No source with id {record_id}",
        )

    # --- writes (secevents.server.writes.flows: keys, If-Match, Idempotency-Key, revisions) ----------------------

    @post(
        "/",
        operation_id="create_source",
        summary="Create a source",
        description="Needs a key with the `write` scope. Every referenced record must exist and every "
        "citation quote must be in its source's text (when the source has one). Send "
        "`Idempotency-Key` to make retries safe.",
        security=WRITE_SECURITY,
        status_code=201,
        responses=flows.created_responses(Source, "source"),
        response_headers=flows.CREATED_HEADERS,
    )
    async def create_source(
        self,
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        data: JSONBody[SourceCreate],
        idempotency_key: flows.IdempotencyKey = None,
    ) -> Response[bytes]:
        return await flows.create(
            conn,
            queries.WRITES,
            data,
            principal=principal,
            settings=settings,
            idempotency_key=idempotency_key,
        )

    @patch(
        "/{record_id:uuid}",
        operation_id="update_source",
        summary="Update a source",
        description="A partial update: an absent field is unchanged, `null` clears it, objects and "
        "lists are replaced whole. Send the record's `ETag` as `If-Match`.",
        security=WRITE_SECURITY,
        responses=flows.updated_responses(Source, "source"),
        response_headers=flows.UPDATED_HEADERS,
    )
    async def update_source(
        self,
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        record_id: FromPath[UUID],
        data: JSONBody[SourcePatch],
        if_match: flows.IfMatch = None,
    ) -> Response[bytes]:
        return await flows.update(
            conn,
            queries.WRITES,
            record_id,
            data,
            if_match=if_match,
            principal=principal,
            settings=settings,
        )

    @delete(
        "/{record_id:uuid}",
        operation_id="delete_source",
        summary="Delete a source",
        description="A soft delete: the record leaves every read, keeps its revisions, and the change "
        "feed gets a tombstone. Send the record's `ETag` as `If-Match`.",
        security=WRITE_SECURITY,
        status_code=204,
        responses=flows.deleted_responses(),
    )
    async def delete_source(
        self,
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        record_id: FromPath[UUID],
        if_match: flows.IfMatch = None,
    ) -> Response[None]:
        return await flows.delete(
            conn, queries.WRITES, record_id, if_match=if_match, principal=principal, settings=settings
        )
