"""HTTP handlers of the incidents resource."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import asyncpg
import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from secevents.schemas.incidents import Incident, IncidentCreate, IncidentPage, IncidentPatch
from secevents.schemas.stats import IncidentStats, StatsKey
from secevents.server.http.auth import WRITE_SECURITY, Principal
from secevents.server.http.caching import body_etag, conditional_response
from secevents.server.http.errors import InvalidParameter
from secevents.server.http.responses import EncodedResponse
from secevents.server.reads.filters import Cursor, Limit
from secevents.server.reads.listing import (
    PAGE_HEADERS,
    READ_HEADERS,
    list_response,
    read_responses,
    record_response,
)
from secevents.server.resources.incidents import queries
from secevents.server.resources.incidents.filters import IncidentFilters, provide_incident_filters
from secevents.server.settings import Settings
from secevents.server.writes import flows


class IncidentController(Controller):
    path = "/v1/incidents"
    tags = ["incidents"]

    @get(
        "/",
        operation_id="list_incidents",
        summary="List incidents",
        description="Filters combine with AND; a repeated parameter means OR "
        "(`country=PK&country=AF`). Keyset pages: follow `next_cursor` (or the `Link` header).",
        responses=read_responses(IncidentPage, "A page of incidents"),
        response_headers=PAGE_HEADERS,
        dependencies={"filters": Provide(provide_incident_filters, sync_to_thread=False)},
    )
    async def list_incidents(
        self,
        request: Request[Any, Any, Any],
        filters: NamedDependency[IncidentFilters],
        sort: Annotated[queries.IncidentSort, QueryParameter(description="Sort order")] = "-occurred",
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> EncodedResponse:
        order = queries.SORTS[sort]
        return await list_response(
            request,
            resource="incidents",
            sort=order,
            limit=limit,
            cursor=cursor,
            query=lambda after: queries.list_query(filters, order, after, limit),
        )

    @get(
        "/stats",
        operation_id="incident_stats",
        summary="Incident counts and casualties per group",
        description="Groups the incidents that match the list filters by one or two keys and "
        "sums each casualty bound (`low`, `best`, `high`) over the incidents that give it.",
        responses=read_responses(IncidentStats, "Groups in key order"),
        response_headers=READ_HEADERS,
        dependencies={"filters": Provide(provide_incident_filters, sync_to_thread=False)},
    )
    async def incident_stats(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        filters: NamedDependency[IncidentFilters],
        group_by: Annotated[
            list[StatsKey],
            QueryParameter(
                description="One or two different keys to group by",
                min_items=1,
                max_items=2,
                schema_extra={"uniqueItems": True},
            ),
        ],
    ) -> EncodedResponse:
        if len(group_by) > 2 or len(set(group_by)) != len(group_by):
            raise InvalidParameter("group_by", "give one or two different keys")
        sql, args = queries.stats_query(filters, group_by)
        groups: bytes = await conn.fetchval(sql, *args)
        body = b'{"group_by":' + msgspec.json.encode(group_by) + b',"data":' + groups + b"}"
        return conditional_response(request, settings, body, body_etag(body))

    @get(
        "/{record_id:uuid}",
        operation_id="get_incident",
        summary="Get one incident",
        responses=read_responses(Incident, "The incident, with its organisations (id, name, role) inline"),
        response_headers=READ_HEADERS,
    )
    async def get_incident(
        self,
        request: Request[Any, Any, Any],
        record_id: FromPath[UUID],
    ) -> EncodedResponse:
        return await record_response(
            request,
            sql=queries.READ,
            record_id=record_id,
            missing=f"No incident with id {record_id}",
        )

    # --- writes (secevents.server.writes.flows: keys, If-Match, Idempotency-Key, revisions) ----------------------

    @post(
        "/",
        operation_id="create_incident",
        summary="Create an incident",
        description="Needs a key with the `write` scope. Every referenced record must exist and every "
        "citation quote must be in its source's text (when the source has one). Send "
        "`Idempotency-Key` to make retries safe.",
        security=WRITE_SECURITY,
        status_code=201,
        responses=flows.created_responses(Incident, "incident"),
        response_headers=flows.CREATED_HEADERS,
    )
    async def create_incident(
        self,
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        data: JSONBody[IncidentCreate],
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
        operation_id="update_incident",
        summary="Update an incident",
        description="A partial update: an absent field is unchanged, `null` clears it, objects and "
        "lists are replaced whole. Send the record's `ETag` as `If-Match`.",
        security=WRITE_SECURITY,
        responses=flows.updated_responses(Incident, "incident"),
        response_headers=flows.UPDATED_HEADERS,
    )
    async def update_incident(
        self,
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        record_id: FromPath[UUID],
        data: JSONBody[IncidentPatch],
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
        operation_id="delete_incident",
        summary="Delete an incident",
        description="A soft delete: the record leaves every read, keeps its revisions, and the change "
        "feed gets a tombstone. Send the record's `ETag` as `If-Match`.",
        security=WRITE_SECURITY,
        status_code=204,
        responses=flows.deleted_responses(),
    )
    async def delete_incident(
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
