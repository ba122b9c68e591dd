"""The one shape of every list endpoint: decode the cursor, run one statement, cut the page,
sign the next cursor, answer with ETag / Link / Cache-Control."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from litestar import Request
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec

from secevents.server.http.caching import conditional_response, page_etag
from secevents.server.http.dependencies import RequestConnection, request_settings
from secevents.server.http.errors import PROBLEM_RESPONSES, NotFound, problem
from secevents.server.http.etags import record_etag
from secevents.server.http.responses import EncodedResponse, json_page
from secevents.server.reads.filters import SqlBuilder
from secevents.server.reads.pagination import SortOrder, cursor_codec, next_link, query_shape


def page_sql(
    table: str,
    alias: str,
    sql: SqlBuilder,
    sort: SortOrder,
    after: tuple[Any, ...] | None,
    limit: int,
) -> str:
    """One page of ``table alias`` under ``sql``'s conditions, plus one row to tell whether
    another follows, in a single statement that reads the stored documents as they are.
    Rows: ``doc, version, k0, k1…`` (the last key is the record's id)."""
    if after is not None:
        sql.where(sort.after([sql.param(value) for value in after]))
    return f"""
SELECT {alias}.doc, {alias}.version, {sort.select_keys()} FROM {table} {alias}
 WHERE {sql.where_sql()}
 ORDER BY {sort.order_by} LIMIT {sql.param(limit + 1)}"""


def scoped_page_sql(parent_table: str, parent_param: str, page: str, sort: SortOrder) -> str:
    """``page`` (which refers to ``parent_param``) under a parent record: no row at all when the
    parent does not exist, one row with a NULL ``doc`` when it has nothing to list."""
    keys = ", ".join(f"page.k{n}" for n in range(len(sort.columns)))
    return f"""
SELECT page.doc, page.version, {keys}
  FROM {parent_table} parent
  LEFT JOIN LATERAL ({page}) page ON true
 WHERE parent.id = {parent_param}::uuid AND parent.deleted_at IS NULL
 ORDER BY {sort.outer_order_by()}"""


PageQuery = Callable[[tuple[Any, ...] | None], tuple[str, list[Any]]]


async def list_response(
    request: Request[Any, Any, Any],
    *,
    resource: str,
    sort: SortOrder,
    limit: int,
    cursor: str | None,
    query: PageQuery,
    missing: str | None = None,
) -> EncodedResponse:
    """``query(after_key)`` returns the page's SQL (rows ``doc, version, k0, k1…`` as
    :func:`page_sql` selects them, at most ``limit + 1``). With ``missing``, no row at all means the parent record does not exist
    (404 with that message) and rows whose ``doc`` is NULL stand for an empty page.

    The connection is taken here, once the parameters and the cursor are known to be valid,
    not as a dependency (see ``provide_connection``)."""
    settings = request_settings(request)
    codec = cursor_codec(settings.api.cursor_secret)
    shape = query_shape(resource, sort, request)
    after = codec.decode(cursor, shape.scope, sort) if cursor is not None else None
    sql, args = query(after)
    async with RequestConnection(request, settings, one_read=True) as conn:
        rows = await conn.fetch(sql, *args)
    if missing is not None:
        if not rows:
            raise NotFound(missing)
        rows = [row for row in rows if row[0] is not None]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = codec.encode(shape.scope, sort.key_of(rows[-1]))
    body = json_page([row[0] for row in rows], next_cursor)
    etag = page_etag([row[-1] for row in rows], [row[1] for row in rows], next_cursor)
    link = next_link(shape, next_cursor) if next_cursor else None
    return conditional_response(request, settings, body, etag, link=link)


async def record_response(
    request: Request[Any, Any, Any],
    *,
    sql: str,
    record_id: UUID,
    missing: str,
) -> EncodedResponse:
    """One record (``sql`` returns ``doc, version``) with its ETag; 404 when absent."""
    settings = request_settings(request)
    async with RequestConnection(request, settings, one_read=True) as conn:
        row = await conn.fetchrow(sql, record_id)
    if row is None:
        raise NotFound(missing)
    body: bytes = row["doc"]
    return conditional_response(request, settings, body, record_etag(record_id, row["version"]))


# OpenAPI: what every read answers besides its body.
READ_HEADERS = [
    ResponseHeader(
        name="ETag", description="Send it back in `If-None-Match` to get a 304", documentation_only=True
    ),
    ResponseHeader(
        name="Cache-Control",
        description="Caches may keep the response but must revalidate",
        documentation_only=True,
    ),
    ResponseHeader(name="Vary", description="`Accept` (JSON or MessagePack)", documentation_only=True),
]
PAGE_HEADERS = [
    *READ_HEADERS,
    ResponseHeader(
        name="Link",
        description='RFC 8288 `<…>; rel="next"` when another page follows',
        documentation_only=True,
    ),
]
NOT_MODIFIED = ResponseSpec(None, description="Not modified: the `If-None-Match` ETag is current")
NOT_ACCEPTABLE = problem("`Accept` allows neither application/json nor application/msgpack")


def read_responses(body: type, description: str) -> dict[int, ResponseSpec]:
    return {
        200: ResponseSpec(body, description=description, generate_examples=False),
        304: NOT_MODIFIED,
        **PROBLEM_RESPONSES,
        406: NOT_ACCEPTABLE,
    }
