"""``GET /v1/changes`` (with long-poll) and ``GET /v1/changes/stream`` (Server-Sent Events):
every create, update and delete, in commit order per record."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent

from secevents.schemas.changes import ChangeEvent, ChangePage
from secevents.server import resources
from secevents.server.changes import feed
from secevents.server.changes.cursor import MAX_CURSOR_LENGTH
from secevents.server.changes.push import ChangeHub, entry_json
from secevents.server.http.dependencies import read_after
from secevents.server.http.errors import PROBLEM_RESPONSES, InvalidParameter, problem
from secevents.server.http.limits import extend_request_deadline
from secevents.server.http.responses import JSON
from secevents.server.reads.filters import optional_list_of

RECORD_TYPES = sorted(r.record_type for r in resources.ALL)

MAX_LIMIT = 1000
MAX_WAIT_SECONDS = 60
EVENT_STREAM = "text/event-stream"
CURSOR_PATTERN = rf"^[A-Za-z0-9_-]{{1,{MAX_CURSOR_LENGTH}}}$"

After = Annotated[
    str | None,
    QueryParameter(
        description="Cursor: the `next_cursor` of the previous page, or the `cursor` of the last "
        "change handled (absent: from the beginning). Bare numbers (a `seq`, as versions before "
        "1.1 handed out) are accepted for changes written before that version.",
        # No pattern: v1 documented digits only, and a changed pattern reads as a narrowing to
        # clients (openapi/compat.py). Whatever this server did not sign is a 400.
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
Wait = Annotated[
    int,
    QueryParameter(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Long-poll: when nothing was committed after `after`, wait up to this many "
        "seconds for a change and answer as soon as one commits (else an empty page and the same "
        "cursor). 0: answer at once.",
    ),
]
LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        required=False,
        pattern=CURSOR_PATTERN,
        description="The `id` of the last event received: the stream resumes right after it "
        "(what a browser's EventSource sends when it reconnects). Wins over `after`.",
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


def page_body(page: feed.Page, state: feed.FeedState) -> bytes:
    """``{"data": [...], "next_cursor": ..., "has_more": ...}``."""
    return (
        b'{"data":['
        + b",".join(entry_json(e, state.codec) for e in page.entries)
        + b'],"next_cursor":"'
        + state.codec.encode(page.next).encode()
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
        "`has_more` says whether to ask again right away; with `wait`, a caught-up consumer's "
        "request waits for the next commit instead of asking again.",
        responses={
            200: ResponseSpec(ChangePage, description="A page of changes"),
            **PROBLEM_RESPONSES,
            401: problem("Reads need an API key on this server"),
            429: problem("Rate limit exceeded; retry after `Retry-After` seconds"),
        },
    )
    async def list_changes(
        self,
        request: Request[Any, Any, Any],
        state: State,
        after: After = None,
        types: Types = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Page size")] = 100,
        wait: Wait = 0,
    ) -> Response[bytes]:
        hub: ChangeHub = state.changes
        wanted = record_types(types)
        # Taken before the first read: a commit right after it still ends the wait.
        signal = hub.listener.signal() if wait else None
        known = await hub.feed_state()
        position = known.resolve(after)
        page = await hub.read_page(position, wanted, limit, read_after=read_after(request))
        if signal is not None and not (page.entries or page.has_more):
            extend_request_deadline(request.scope, wait)
            page = await hub.wait(page, wanted, limit, seconds=wait, signal=signal)
        return Response(
            content=page_body(page, known), media_type=JSON, headers={"Cache-Control": "no-store"}
        )

    @get(
        "/stream",
        operation_id="stream_changes",
        summary="Stream every change (Server-Sent Events)",
        description="The change feed as a `text/event-stream`: each change one event — `id:` the "
        "cursor right after it, `event: change`, `data:` the same JSON as an entry of "
        "`GET /v1/changes` — as soon as it commits, in feed order; a comment line at least every "
        "15 seconds while nothing happens. After a dropped connection, reconnect with the last "
        "`id` received as `Last-Event-ID` (or `after`): the stream resumes right after it, so "
        "nothing is missed or seen twice.",
        media_type=EVENT_STREAM,
        responses={
            200: ResponseSpec(
                ChangeEvent,
                media_type=EVENT_STREAM,
                description="One `change` event per change, comments as heartbeats",
                examples=None,
            ),
            **PROBLEM_RESPONSES,
            401: problem("Reads need an API key on this server"),
            429: problem("Rate limit exceeded; retry after `Retry-After` seconds"),
        },
    )
    async def stream_changes(
        self,
        state: State,
        after: After = None,
        types: Types = None,
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        hub: ChangeHub = state.changes
        wanted = record_types(types)
        known = await hub.feed_state()
        cursor = known.resolve(last_event_id or after)
        return ServerSentEvent(hub.events(cursor, wanted, known.codec), headers={"Cache-Control": "no-store"})
