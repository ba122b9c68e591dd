"""``POST /v1/imports``: NDJSON of records in the API's own shapes, all or nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec

from secevents.schemas.imports import ImportResult
from secevents.schemas.problems import FieldError
from secevents.server.http.auth import WRITE_SECURITY, Principal
from secevents.server.http.errors import PROBLEM_RESPONSES, DomainError, InvalidBody, problem
from secevents.server.importers import ImportFailed, ndjson
from secevents.server.settings import Settings

NDJSON = "application/x-ndjson"
EXAMPLE = (
    '{"type": "source", "record": {"id": "0193a0c0-0000-7000-8000-000000000001", "kind": "news_article", '
    '"title": "Daraban attack", "text": "at least 23 soldiers were martyred"}}\n'
    '{"type": "incident", "record": {"title": "Attack in Daraban", "type": "battle", '
    '"occurred": {"start": "2023-12-12", "end": "2023-12-12", "precision": "day"}, '
    '"location": {"country": "PK", "precision": "admin2"}, "citations": [{"source_id": '
    '"0193a0c0-0000-7000-8000-000000000001", "quote": "at least 23 soldiers were martyred"}]}}\n'
)


# Litestar documents no body for a handler that streams it: the spec gets this one from
# `secevents.server.openapi.with_formats`.
# Declared as bytes (`application/octet-stream`, which every generator can send), NDJSON being
# what they hold: client generators stop at a media type they do not know (openapi-python-client
# left this operation out), so `application/x-ndjson` is listed beside it, under the vendor
# extension openapi/compat.py and the SDK's generator read. The server reads the body whatever
# its type says.
REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "description": "NDJSON, one `{type, record}` object per line. Send it as `application/x-ndjson` "
    "(or `application/octet-stream`, as generated clients upload bytes).",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    "x-alternative-media-types": {NDJSON: {"schema": {"type": "string"}, "example": EXAMPLE}},
}


class ImportRejected(DomainError):
    status, code, title = 422, "import_rejected", "Import rejected"


async def _limited(request: Request[Any, Any, Any], limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise HTTPException(status_code=413, detail=f"An import may hold at most {limit} bytes.")
        yield chunk


class ImportController(Controller):
    path = "/v1/imports"
    tags = ["imports"]

    @post(
        "/",
        operation_id="import_records",
        summary="Import records (NDJSON)",
        description=(
            'One record per line: `{"type": "source"|"organisation"|"incident"|"statement", '
            '"record": {…}}`, where `record` is the body `POST /v1/<resource>s` takes; it may also '
            "carry `id`, `version`, `created_at` and `updated_at` (kept) and the read-only fields of "
            "the read shape (ignored), so `GET /v1/exports/{resource}?format=ndjson` output imports "
            'as is; its last line, `{"type": "export_complete", "count": N}`, is checked (a count '
            "that differs from the records before it is an error: the file is incomplete). "
            "Records may refer to each other in any order. A record whose id is stored is applied by "
            "`version`: newer updates it, the same version leaves it as it is, older is skipped and "
            "listed in `skipped_records` (a line without `version` for a stored record is an error). "
            '`{"type": "attribution", …}` lines of an export are skipped. All or nothing: any problem is a '
            "422 whose `errors` name the line (`line 3: citations[0].source_id`). Needs the `admin` scope."
        ),
        status_code=200,
        opt={"scope": "admin"},
        security=WRITE_SECURITY,
        request_max_body_size=None,  # streamed; limited by SECEVENTS_MAX_IMPORT_BYTES below
        responses={
            200: ResponseSpec(
                ImportResult, description="Imported: what was created, updated, unchanged, skipped"
            ),
            401: problem("No API key"),
            403: problem("The key lacks the `admin` scope"),
            413: problem("The body is larger than the server accepts"),
            422: problem("Nothing was imported: the `errors` list the problems by line"),
            **PROBLEM_RESPONSES,
        },
    )
    async def import_records(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
    ) -> Response[ImportResult]:
        chunks = _limited(request, settings.api.max_import_bytes)
        try:
            result = await ndjson.import_lines(
                conn, chunks, actor=principal.actor, api_key_id=principal.key_id
            )
        except ImportFailed as exc:
            errors = [
                FieldError(field=f"line {e.line}" + (f": {e.field}" if e.field else ""), message=e.message)
                for e in exc.errors
            ]
            more = exc.total_errors - len(exc.errors)
            detail = exc.message + (f" (first {len(errors)} shown, {more} more)" if more > 0 else "")
            raise ImportRejected(detail, errors=errors) from None
        if result.lines == 0:
            # The body is required (as documented): an empty one is a mistake, not an import.
            raise InvalidBody("The body is empty: send one `{type, record}` JSON object per line.")
        return Response(result)
