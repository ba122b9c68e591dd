"""``GET /v1/{resource}/{id}/revisions[/{version}]``: every version of a record, who wrote it
and when — deleted records included (their history outlives them)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import asyncpg
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, PathParameter, QueryParameter

from secevents.schemas.common import INT4_MAX
from secevents.schemas.records import RecordType
from secevents.schemas.revisions import Revision, RevisionPage
from secevents.server import resources
from secevents.server.http.errors import PROBLEM_RESPONSES, NotFound, problem
from secevents.server.http.responses import JSON
from secevents.server.revisions import queries

_RESPONSES_EXTRA = {
    401: problem("Reads need an API key on this server"),
    429: problem("Rate limit exceeded; retry after `Retry-After` seconds"),
}


async def revision_page(
    conn: asyncpg.Connection, record_type: RecordType, record_id: UUID, cursor: str | None, limit: int
) -> Response[bytes]:
    # Versions are int4: no version follows a larger cursor, and asyncpg cannot bind it.
    after = min(int(cursor), INT4_MAX) if cursor is not None else 0
    rows = await conn.fetch(queries.PAGE, record_type, record_id, after, limit + 1)
    if not rows and not await conn.fetchval(queries.EXISTS, record_type, record_id):
        raise NotFound(f"No {record_type} with id {record_id}")
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = b'"' + str(rows[-1]["version"]).encode() + b'"' if more else b"null"
    body = b'{"data":[' + b",".join(r["revision"] for r in rows) + b'],"next_cursor":' + next_cursor + b"}"
    return Response(content=body, media_type=JSON)


async def one_revision(
    conn: asyncpg.Connection, record_type: RecordType, record_id: UUID, version: int
) -> Response[bytes]:
    body = await conn.fetchval(queries.ONE, record_type, record_id, version)
    if body is None:
        raise NotFound(f"No version {version} of {record_type} {record_id}")
    # A past version never changes: caches may keep it.
    return Response(
        content=body, media_type=JSON, headers={"Cache-Control": "public, max-age=86400, immutable"}
    )


RevisionCursor = Annotated[
    str | None,
    QueryParameter(description="The `next_cursor` of the previous page", pattern=r"^[0-9]{1,10}$"),
]
Version = Annotated[int, PathParameter(ge=1, le=INT4_MAX, description="A version number (1 = created)")]


def with_article(noun: str) -> str:
    """``a statement``, ``an incident``, ``an organisation``: the article the noun's sound takes."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _controller(record_type: RecordType, resource: str) -> type[Controller]:
    class RevisionController(Controller):
        path = f"/v1/{resource}/{{record_id:uuid}}/revisions"
        tags = [resource]

        @get(
            "/",
            operation_id=f"list_{record_type}_revisions",
            summary=f"Revision history of {with_article(record_type)}",
            description="Every version, oldest first: the operation, when it was committed, the "
            "API key that wrote it (`api_key_id`, `actor`) and the full document.",
            responses={
                200: ResponseSpec(RevisionPage, description="A page of revisions"),
                **PROBLEM_RESPONSES,
                **_RESPONSES_EXTRA,
            },
        )
        async def list_revisions(
            self,
            conn: NamedDependency[asyncpg.Connection],
            record_id: FromPath[UUID],
            cursor: RevisionCursor = None,
            limit: Annotated[int, QueryParameter(ge=1, le=500, description="Page size")] = 50,
        ) -> Response[bytes]:
            return await revision_page(conn, record_type, record_id, cursor, limit)

        @get(
            "/{version:int}",
            operation_id=f"get_{record_type}_revision",
            summary=f"One version of {with_article(record_type)}",
            responses={
                200: ResponseSpec(Revision, description="The revision"),
                **PROBLEM_RESPONSES,
                **_RESPONSES_EXTRA,
            },
        )
        async def get_revision(
            self,
            conn: NamedDependency[asyncpg.Connection],
            record_id: FromPath[UUID],
            version: Version,
        ) -> Response[bytes]:
            return await one_revision(conn, record_type, record_id, version)

    RevisionController.__name__ = RevisionController.__qualname__ = f"{record_type.title()}RevisionController"
    return RevisionController


REVISION_CONTROLLERS: list[type[Controller]] = [
    _controller(r.record_type, r.collection) for r in resources.ALL
]
