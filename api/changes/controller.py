"""``GET /v1/changes``: every create, update and delete, in commit order."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import QueryParameter

from secevents.schemas.changes import ChangePage
from secevents.server import resources
from secevents.server.changes import queries
from secevents.server.http.errors import PROBLEM_RESPONSES, InvalidParameter, problem
from secevents.server.http.responses import JSON
from secevents.server.reads.filters import optional_list_of

RECORD_TYPES = sorted(r.record_type for r in resources.ALL)

MAX_LIMIT = 1000

After = Annotated[
    str | None,
    QueryParameter(
        description="Cursor: the `next_cursor` of the previous page (absent: from the beginning).",
        pattern=r"^[0-9]{1,18}$",
    ),
]
Types = Annotated[
    list[str] | None,
    QueryParameter(
        description="Record types to include, comma-separated or repeated "
        "(`incident`, `organisation`, `statement`, `source`); absent: all.",
        schema_extra=optional_list_of(Schema(type=OpenAPIType.STRING, enum=RECORD_TYPES)),
    ),
]


def _record_types(types: list[str] | None) -> list[str] | None:
    if not types:
        return None
    wanted = sorted({t.strip() for value in types for t in value.split(",") if t.strip()})
    unknown = [t for t in wanted if t not in RECORD_TYPES]
    if unknown or not wanted:
        raise InvalidParameter("types", f"unknown record type(s) {unknown}; use {RECORD_TYPES}")
    return wanted


class ChangeController(Controller):
    path = "/v1/changes"
    tags = ["changes"]

    @get(
        "/",
        operation_id="list_changes",
        summary="Follow every change",
        description="Creates, updates and deletes (tombstones) in commit order, each with the "
        "record's new version. Store `next_cursor` and pass it as `after` to get what was "
        "committed since: a consumer that does so never misses a change and never sees one "
        "twice, even while writers run concurrently. `has_more` says whether to ask again "
        "right away.",
        responses={
            200: ResponseSpec(ChangePage, description="A page of changes"),
            **PROBLEM_RESPONSES,
            401: problem("Reads need an API key on this server"),
            429: problem("Rate limit exceeded; retry after `Retry-After` seconds"),
        },
    )
    async def list_changes(
        self,
        conn: NamedDependency[asyncpg.Connection],
        after: After = None,
        types: Types = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Page size")] = 100,
    ) -> Response[bytes]:
        cursor = int(after) if after is not None else 0
        rows = await conn.fetch(queries.PAGE, cursor, _record_types(types), limit + 1)
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = rows[-1]["seq"] if rows else cursor
        body = (
            b'{"data":['
            + b",".join(r["change"] for r in rows)
            + b'],"next_cursor":"'
            + str(next_cursor).encode()
            + b'","has_more":'
            + (b"true" if has_more else b"false")
            + b"}"
        )
        return Response(content=body, media_type=JSON, headers={"Cache-Control": "no-store"})
