"""HTTP handlers of the organisations resource."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import asyncpg
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from api import writes
from api.auth import WRITE_SECURITY, Principal
from api.filters import Cursor, Limit
from api.listing import PAGE_HEADERS, READ_HEADERS, list_response, read_responses, record_response
from api.resources.incidents import queries as incident_queries
from api.resources.incidents.filters import IncidentFilters, provide_organisation_incident_filters
from api.resources.organisations import queries
from api.resources.organisations.filters import OrganisationFilters, provide_organisation_filters
from api.resources.statements import queries as statement_queries
from api.resources.statements.filters import StatementFilters, provide_organisation_statement_filters
from api.settings import Settings
from schemas.incidents import IncidentPage
from schemas.organisations import Organisation, OrganisationCreate, OrganisationPage, OrganisationPatch
from schemas.statements import StatementPage


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
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        filters: NamedDependency[OrganisationFilters],
        sort: Annotated[queries.OrganisationSort, QueryParameter(description="Sort order")] = "name",
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Response[bytes]:
        order = queries.SORTS[sort]
        return await list_response(
            request,
            conn,
            settings,
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
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        record_id: FromPath[UUID],
    ) -> Response[bytes]:
        return await record_response(
            request,
            conn,
            settings,
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
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        record_id: FromPath[UUID],
        filters: NamedDependency[IncidentFilters],
        sort: Annotated[
            incident_queries.IncidentSort, QueryParameter(description="Sort order")
        ] = "-occurred",
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Response[bytes]:
        order = incident_queries.SORTS[sort]
        return await list_response(
            request,
            conn,
            settings,
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
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        record_id: FromPath[UUID],
        filters: NamedDependency[StatementFilters],
        sort: Annotated[
            statement_queries.StatementSort, QueryParameter(description="Sort order")
        ] = "-issued",
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Response[bytes]:
        order = statement_queries.SORTS[sort]
        return await list_response(
            request,
            conn,
            settings,
            resource="organisations/statements",
            sort=order,
            limit=limit,
            cursor=cursor,
            query=lambda after: statement_queries.organisation_list_query(
                record_id, filters, order, after, limit
            ),
            missing=f"No organisation with id {record_id}",
        )

    # --- writes (api.writes: keys, If-Match, Idempotency-Key, revisions) ----------------------

    @post(
        "/",
        operation_id="create_organisation",
        summary="Create an organisation",
        description="Needs a key with the `write` scope. Every referenced record must exist and every "
        "citation quote must be in its source's text (when the source has one). Send "
        "`Idempotency-Key` to make retries safe.",
        security=WRITE_SECURITY,
        status_code=201,
        responses=writes.created_responses(Organisation, "organisation"),
        response_headers=writes.CREATED_HEADERS,
    )
    async def create_organisation(
        self,
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        data: JSONBody[OrganisationCreate],
        idempotency_key: writes.IdempotencyKey = None,
    ) -> Response[bytes]:
        return await writes.create(
            conn,
            writes.ORGANISATIONS,
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
        responses=writes.updated_responses(Organisation, "organisation"),
        response_headers=writes.UPDATED_HEADERS,
    )
    async def update_organisation(
        self,
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        record_id: FromPath[UUID],
        data: JSONBody[OrganisationPatch],
        if_match: writes.IfMatch = None,
    ) -> Response[bytes]:
        return await writes.update(
            conn,
            writes.ORGANISATIONS,
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
        responses=writes.deleted_responses(),
    )
    async def delete_organisation(
        self,
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        record_id: FromPath[UUID],
        if_match: writes.IfMatch = None,
    ) -> Response[None]:
        return await writes.delete(
            conn, writes.ORGANISATIONS, record_id, if_match=if_match, principal=principal, settings=settings
        )
