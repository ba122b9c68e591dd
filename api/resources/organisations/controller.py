"""HTTP handlers of the organisations resource."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import asyncpg
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from secevents.schemas.incidents import IncidentPage
from secevents.schemas.organisations import (
    Organisation,
    OrganisationCreate,
    OrganisationPage,
    OrganisationPatch,
)
from secevents.schemas.statements import StatementPage
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
from secevents.server.resources.incidents import queries as incident_queries
from secevents.server.resources.incidents.filters import (
    IncidentFilters,
    provide_organisation_incident_filters,
)
from secevents.server.resources.organisations import queries
from secevents.server.resources.organisations.filters import OrganisationFilters, provide_organisation_filters
from secevents.server.resources.statements import queries as statement_queries
from secevents.server.resources.statements.filters import (
    StatementFilters,
    provide_organisation_statement_filters,
)
from secevents.server.settings import Settings
from secevents.server.writes import flows


class OrganisationController(Controller):
    path = "/v1/organisations"
    tags = ["organisations"]

    @get(
        "/",
        operation_id="list_organisations",
        summary="List organisations",
        description="Filters combine with AND; a repeated parameter means OR. Keyset pages: follow "
        "`next_cursor` (or the `Link` header).",
        responses=read_responses(OrganisationPage, "A page of organisations"),
        response_headers=PAGE_HEADERS,
        dependencies={"filters": Provide(provide_organisation_filters, sync_to_thread=False)},
    )
    async def list_organisations(
        self,
        request: Request[Any, Any, Any],
        filters: NamedDependency[OrganisationFilters],
        sort: Annotated[
            queries.OrganisationSort | None,
            QueryParameter(
                description="Sort order. `relevance`: the names and aliases closest to `q` first "
                "(the default with `q`; `name` is the default without)"
            ),
        ] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> EncodedResponse:
        order = queries.sort_for(sort, filters)
        return await list_response(
            request,
            resource="organisations",
            sort=order,
            limit=limit,
            cursor=cursor,
            query=lambda after: queries.list_query(filters, order, after, limit),
        )

    @get(
        "/{record_id:uuid}",
        operation_id="get_organisation",
        summary="Get one organisation",
        responses=read_responses(Organisation, "The organisation"),
        response_headers=READ_HEADERS,
    )
    async def get_organisation(
        self,
        request: Request[Any, Any, Any],
        record_id: FromPath[UUID],
    ) -> EncodedResponse:
        return await record_response(
            request,
            sql=queries.READ,
            record_id=record_id,
            missing=f"No organisation with id {record_id}",
        )

    @get(
        "/{record_id:uuid}/incidents",
        operation_id="list_organisation_incidents",
        summary="Incidents an organisation took part in",
        description="Filters combine with AND; a repeated parameter means OR. Keyset pages: follow "
        "`next_cursor` (or the `Link` header).",
        responses=read_responses(
            IncidentPage, "A page of the organisation's incidents (`role`: in that role)"
        ),
        response_headers=PAGE_HEADERS,
        dependencies={"filters": Provide(provide_organisation_incident_filters, sync_to_thread=False)},
    )
    async def list_organisation_incidents(
        self,
        request: Request[Any, Any, Any],
        record_id: FromPath[UUID],
        filters: NamedDependency[IncidentFilters],
        sort: Annotated[
            incident_queries.IncidentSort, QueryParameter(description="Sort order")
        ] = "-occurred",
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> EncodedResponse:
        order = incident_queries.SORTS[sort]
        return await list_response(
            request,
            resource="organisations/incidents",
            sort=order,
            limit=limit,
            cursor=cursor,
            query=lambda after: incident_queries.organisation_list_query(
                record_id, filters, order, after, limit
            ),
            missing=f"No organisation with id {record_id}",
        )

    @get(
        "/{record_id:uuid}/statements",
        operation_id="list_organisation_statements",
        summary="Statements involving an organisation",
        description="Filters combine with AND; a repeated parameter means OR. Keyset pages: follow "
        "`next_cursor` (or the `Link` header).",
        responses=read_responses(
            StatementPage,
            "A page of statements the organisation issued, received or is mentioned in (`role`)",
        ),
        response_headers=PAGE_HEADERS,
        dependencies={"filters": Provide(provide_organisation_statement_filters, sync_to_thread=False)},
    )
    async def list_organisation_statements(
        self,
        request: Request[Any, Any, Any],
        record_id: FromPath[UUID],
        filters: NamedDependency[StatementFilters],
        sort: Annotated[
            statement_queries.StatementSort, QueryParameter(description="Sort order")
        ] = "-issued",
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> EncodedResponse:
        order = statement_queries.SORTS[sort]
        return await list_response(
            request,
            resource="organisations/statements",
            sort=order,
            limit=limit,
            cursor=cursor,
            query=lambda after: statement_queries.organisation_list_query(
                record_id, filters, order, after, limit
            ),
            missing=f"No organisation with id {record_id}",
        )

    # --- writes (secevents.server.writes.flows: keys, If-Match, Idempotency-Key, revisions) ----------------------

    @post(
        "/",
        operation_id="create_organisation",
        summary="Create an organisation",
        description="Needs a key with the `write` scope. Every referenced record must exist and every "
        "citation quote must be in its source's text (when the source has one). Send "
        "`Idempotency-Key` to make retries safe.",
        security=WRITE_SECURITY,
        status_code=201,
        responses=flows.created_responses(Organisation, "organisation"),
        response_headers=flows.CREATED_HEADERS,
    )
    async def create_organisation(
        self,
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        data: JSONBody[OrganisationCreate],
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
        operation_id="update_organisation",
        summary="Update an organisation",
        description="A partial update: an absent field is unchanged, `null` clears it, objects and "
        "lists are replaced whole. Send the record's `ETag` as `If-Match`.",
        security=WRITE_SECURITY,
        responses=flows.updated_responses(Organisation, "organisation"),
        response_headers=flows.UPDATED_HEADERS,
    )
    async def update_organisation(
        self,
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        record_id: FromPath[UUID],
        data: JSONBody[OrganisationPatch],
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
        operation_id="delete_organisation",
        summary="Delete an organisation",
        description="A soft delete: the record leaves every read, keeps its revisions, and the change "
        "feed gets a tombstone. Send the record's `ETag` as `If-Match`.",
        security=WRITE_SECURITY,
        status_code=204,
        responses=flows.deleted_responses(),
    )
    async def delete_organisation(
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
