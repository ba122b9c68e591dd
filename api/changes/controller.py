"""``GET /v1/changes``: every create, update and delete, in commit order per record."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import QueryParameter

from secevents.schemas.changes import ChangePage
from secevents.server import resources
from secevents.server.changes import feed
from secevents.server.changes.cursor import MAX_CURSOR_LENGTH, CursorCodec
from secevents.server.http.errors import PROBLEM_RESPONSES, InvalidParameter, problem
from secevents.server.http.responses import JSON
from secevents.server.reads.filters import optional_list_of

RECORD_TYPES = sorted(r.record_type for r in resources.ALL)

MAX_LIMIT = 1000

After = Annotated[
    str | None,
    QueryParameter(
        description="Cursor: the `next_cursor` of the previous page, or the `cursor` of the last "
        "change handled (absent: from the beginning). Bare numbers (a `seq`, as versions before "
        "1.1 handed out) are accepted for changes written before that version.",
        pattern=rf"^[A-Za-z0-9_-]{{1,{MAX_CURSOR_LENGTH}}}$",
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


def record_types(types: list[str] | None) -> list[str] | None:
    if not types:
        return None
    wanted = sorted({t.strip() for value in types for t in value.split(",") if t.strip()})
    unknown = [t for t in wanted if t not in RECORD_TYPES]
    if unknown or not wanted:
        raise InvalidParameter("types", f"unknown record type(s) {unknown}; use {RECORD_TYPES}")
    return wanted


def page_body(page: feed.Page, codec: CursorCodec) -> bytes:
    """``{"data": [...], "next_cursor": ..., "has_more": ...}``; each entry gains its ``cursor``."""
    entries = (e.change[:-1] + b',"cursor":"' + codec.encode(e.after).encode() + b'"}' for e in page.entries)
    return (
        b'{"data":['
        + b",".join(entries)
        + b'],"next_cursor":"'
        + codec.encode(page.next).encode()
        + b'","has_more":'
        + (b"true" if page.has_more else b"false")
        + b"}"
    )


class ChangeController(Controller):
    path = "/v1/changes"
    tags = ["changes"]

    @get(
        "/",
        operation_id="list_changes",
        summary="Follow every change",
        description="Creates, updates and deletes (tombstones), each with the record's new "
        "version. Store `next_cursor` and pass it as `after` to get what was committed since: a "
        "consumer that does so never misses a change and never sees one twice, even while "
        "writers and imports run concurrently and commit out of order. Each change also carries "
        "the `cursor` that resumes right after it. Changes of one record come in the order they "
        "were committed; a transaction's changes (a whole import) come together, in one batch. "
        "`has_more` says whether to ask again right away.",
        responses={
            200: ResponseSpec(ChangePage, description="A page of changes"),
            **PROBLEM_RESPONSES,
            401: problem("Reads need an API key on this server"),
            429: problem("Rate limit exceeded; retry after `Retry-After` seconds"),
        },
    )
    async def list_changes(
        self,
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        after: After = None,
        types: Types = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Page size")] = 100,
    ) -> Response[bytes]:
        wanted = record_types(types)
        known = await feed.feed_state(state, conn)
        page = await feed.read_page(conn, known.resolve(after), wanted, limit)
        return Response(
            content=page_body(page, known.codec), media_type=JSON, headers={"Cache-Control": "no-store"}
        )
