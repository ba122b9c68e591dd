"""The write flows shared by every resource: create (with ``Idempotency-Key``), update and
delete (with ``If-Match``), each one transaction that ends by recording the revision.

Each resource's SQL stays in its ``queries.py`` (``insert``, ``update``); this module only
orders the steps: claim the idempotency key, lock the row and compare versions, check
references, write, record the revision (last: it takes the change-feed lock until commit).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

import asyncpg
import msgspec
from litestar import Response
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter
from uuid_utils.compat import uuid7

from secevents.schemas.problems import FieldError
from secevents.server.http.auth import Principal
from secevents.server.http.errors import (
    Conflict,
    DomainError,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    problem,
)
from secevents.server.http.etags import if_match_allows, is_valid_if_match, record_etag
from secevents.server.http.responses import JSON
from secevents.server.settings import Settings
from secevents.server.sql import documents
from secevents.server.sql.documents import cascade
from secevents.server.sql.records import RecordTable, record_revision
from secevents.server.writes import idempotency, references

CreateT = TypeVar("CreateT", bound=msgspec.Struct)
ResultT = TypeVar("ResultT")
PatchT = TypeVar("PatchT", bound=msgspec.Struct)

# One POST in this many also purges expired idempotency keys (bounded batch).
_PURGE_ONE_IN = 200
# Attempts of a write transaction that PostgreSQL aborted to break a deadlock.
_ATTEMPTS = 4
# Referrers named in the 409 of a refused delete.
_NAMED_REFERRERS = 20


@dataclass(frozen=True, slots=True)
class WriteModel(Generic[CreateT, PatchT]):
    """What the generic flows need to know about a resource."""

    record: RecordTable
    path: str
    """Collection path, e.g. ``/v1/incidents``."""
    insert: Callable[[asyncpg.Connection, UUID, CreateT], Awaitable[None]]
    update: Callable[[asyncpg.Connection, UUID, PatchT], Awaitable[None]]
    """Apply a non-empty patch and add 1 to ``version``."""

    @property
    def table(self) -> str:
        return self.record.table

    @property
    def label(self) -> str:
        return self.record.record_type


class IfMatchInvalid(DomainError):
    status, code, title = 400, "invalid_if_match", "Invalid If-Match header"


class VersionMismatch(PreconditionFailed):
    code, title = "version_mismatch", "The record has changed since the given ETag"


def _document(body: bytes, status: int, headers: dict[str, str]) -> Response[bytes]:
    return Response(content=body, status_code=status, media_type=JSON, headers=headers)


def _version_of(document: bytes) -> int:
    version: int = msgspec.json.decode(document, type=_Versioned).version
    return version


class _Versioned(msgspec.Struct):
    version: int


async def create(
    conn: asyncpg.Connection,
    model: WriteModel[CreateT, Any],
    data: CreateT,
    *,
    principal: Principal,
    settings: Settings,
    idempotency_key: str | None,
) -> Response[bytes]:
    """POST: 201 with the new record, ``Location`` and ``ETag``; or the replay of the first
    response to a request with the same ``Idempotency-Key``."""
    record_id = uuid7()
    location = f"{model.path}/{record_id}"
    headers = {"Location": location, "ETag": record_etag(record_id, 1)}
    async with conn.transaction():
        if idempotency_key is not None and principal.key_id is not None:
            replay = await idempotency.claim(
                conn,
                api_key_id=principal.key_id,
                key=idempotency_key,
                method="POST",
                path=model.path,
                fingerprint=idempotency.request_fingerprint("POST", model.path, data),
                wait_seconds=settings.api.idempotency_wait_seconds,
            )
            if replay is not None:
                return _document(
                    replay.body, replay.status, {**replay.headers, "Idempotent-Replayed": "true"}
                )
        await references.check(conn, data)
        await model.insert(conn, record_id, data)
        if idempotency_key is not None and principal.key_id is not None:
            await idempotency.complete(
                conn,
                api_key_id=principal.key_id,
                key=idempotency_key,
                status=201,
                headers=headers,
                record_type=model.record.record_type,
                record_id=record_id,
                record_version=1,
            )
        document = await record_revision(
            conn, model.record, record_id, "create", actor=principal.actor, api_key_id=principal.key_id
        )
    if idempotency_key is not None and random.randrange(_PURGE_ONE_IN) == 0:
        await idempotency.purge_expired(conn)
    return _document(document, 201, headers)


async def _lock_current_version(
    conn: asyncpg.Connection,
    model: WriteModel[Any, Any],
    record_id: UUID,
    if_match: str | None,
    settings: Settings,
) -> tuple[int, bytes | None]:
    """Lock the live record and check ``If-Match`` against its version (inside a transaction);
    return the version and its stored document. Concurrent writers with the same ETag queue on
    the row lock; the first one's commit makes the version move, so every later one gets 412:
    no update is lost. A version moved by a cascade (an organisation the document embeds was
    renamed) is a new version like any other: ``If-Match`` with the older one is a 412.

    The organisations the document embeds are locked first (``FOR SHARE``), then the record
    (``FOR NO KEY UPDATE``, which foreign-key checks of other writers do not wait for): a
    transaction renaming one of those organisations takes the organisation, then the records
    that embed it, so both take their locks in the same order."""
    if if_match is None and settings.api.require_if_match:
        raise PreconditionRequired(
            "Send `If-Match` with the ETag of the version you changed (from GET or the last write)."
        )
    if if_match is not None and not is_valid_if_match(if_match):
        raise IfMatchInvalid('`If-Match` must be a list of quoted ETags or `*`, e.g. `"<id>:<version>"`.')
    await documents.lock_embedded(conn, model.record.record_type, [record_id])
    row = await conn.fetchrow(
        f"SELECT version, doc FROM {model.table} WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE",
        record_id,
    )
    if row is None:
        raise NotFound(f"No {model.label} with id {record_id}")
    version: int = row["version"]
    if if_match is not None and not if_match_allows(if_match, record_id, version):
        raise VersionMismatch(
            f"The {model.label} is at version {version}; fetch it again and reapply your change.",
            headers={"ETag": record_etag(record_id, version)},
        )
    return version, row["doc"]


def _is_empty_patch(data: msgspec.Struct) -> bool:
    return all(getattr(data, name) is msgspec.UNSET for name in data.__struct_fields__)


class _Unchanged(Exception):
    """A patch that left the document as it was: rolls the write back."""

    def __init__(self, document: bytes, version: int) -> None:
        self.document, self.version = document, version


class OrganisationReferenced(Conflict):
    code, title = "still_referenced", "Live records still refer to this record"


async def _retrying(attempt: Callable[[], Awaitable[ResultT]]) -> ResultT:
    """Run a write transaction again when PostgreSQL broke a deadlock by aborting it (a rename's
    cascade and a write of a record it re-renders can still meet in opposite orders). After
    :data:`_ATTEMPTS` the error goes on: a 503 with ``Retry-After``."""
    for n in range(_ATTEMPTS):
        try:
            return await attempt()
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
            if n == _ATTEMPTS - 1:
                raise
            await asyncio.sleep(random.uniform(0.005, 0.05) * (n + 1))
    raise AssertionError("unreachable")


async def update(
    conn: asyncpg.Connection,
    model: WriteModel[Any, PatchT],
    record_id: UUID,
    data: PatchT,
    *,
    if_match: str | None,
    principal: Principal,
    settings: Settings,
) -> Response[bytes]:
    """PATCH: absent fields unchanged, ``null`` clears, lists and objects replaced whole. A patch
    that changes nothing (empty, or giving the values the record already has) makes no new
    version: 200 with the current document. A change to an organisation's name re-renders the
    records that embed it, each as a new version (:mod:`secevents.server.sql.documents.cascade`)."""
    record_type = model.record.record_type

    async def attempt() -> Response[bytes]:
        async with conn.transaction():
            version, before = await _lock_current_version(conn, model, record_id, if_match, settings)
            if _is_empty_patch(data) and before is not None:
                raise _Unchanged(before, version)
            await references.check(conn, data, record_id=record_id)
            await model.update(conn, record_id, data)
            after = (await documents.store(conn, record_type, [record_id]))[record_id]
            if before is not None and documents.same_content(record_type, before, after):
                raise _Unchanged(before, version)
            cascaded = await cascade.rerender(conn, record_type, record_id, before, after)
            document = await record_revision(
                conn,
                model.record,
                record_id,
                "update",
                actor=principal.actor,
                api_key_id=principal.key_id,
                stored=True,
            )
            if cascaded:
                cause = {"type": record_type, "id": str(record_id), "version": _version_of(document)}
                await cascade.record_revisions(
                    conn, cascaded, cause=cause, actor=principal.actor, api_key_id=principal.key_id
                )
        return _document(document, 200, {"ETag": record_etag(record_id, _version_of(document))})

    try:
        return await _retrying(attempt)
    except _Unchanged as unchanged:
        return _document(unchanged.document, 200, {"ETag": record_etag(record_id, unchanged.version)})


async def delete(
    conn: asyncpg.Connection,
    model: WriteModel[Any, Any],
    record_id: UUID,
    *,
    if_match: str | None,
    principal: Principal,
    settings: Settings,
) -> Response[None]:
    """DELETE: a soft delete. The record leaves every read; its history stays, and the change
    feed gets a tombstone. An organisation that live records still embed is not deleted: 409
    naming them (their documents would keep showing it)."""

    async def attempt() -> None:
        async with conn.transaction():
            await _lock_current_version(conn, model, record_id, if_match, settings)
            found = await cascade.referrers(conn, model.record.record_type, record_id)
            if found:
                named = [(t, i) for t, ids in found for i in ids]
                raise OrganisationReferenced(
                    f"{len(named)} live record(s) refer to this {model.label}: "
                    + ", ".join(f"{t} {i}" for t, i in named[:_NAMED_REFERRERS])
                    + (" …" if len(named) > _NAMED_REFERRERS else "")
                    + ". Change or delete them first.",
                    errors=[
                        FieldError(field=f"referrers[{n}]", message=f"{t} {i}")
                        for n, (t, i) in enumerate(named[:_NAMED_REFERRERS])
                    ],
                )
            await conn.execute(
                f"""UPDATE {model.table} SET deleted_at = now(), updated_at = now(), version = version + 1
                     WHERE id = $1""",
                record_id,
            )
            await record_revision(
                conn, model.record, record_id, "delete", actor=principal.actor, api_key_id=principal.key_id
            )

    await _retrying(attempt)
    return Response(content=None, status_code=204)


# --- OpenAPI: headers and responses of the write operations -----------------------------------

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="Any unique string (a UUID is a good choice), at most 255 characters. A retry "
        "with the same key and body replays the first response (kept 24 h; marked "
        "`Idempotent-Replayed: true`); the same key with another body is a 422; a retry while the "
        "first request runs waits for it, then gets 409 if it is still running.",
        max_length=idempotency.MAX_KEY_LENGTH,
    ),
]
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description='The record\'s `ETag` as last read or written (`"<id>:<version>"`). A stale '
        "one is a 412 and changes nothing; without it the request is a 428 (unless the server "
        "allows it).",
    ),
]

_ETAG = ResponseHeader(
    name="ETag", description='The new version\'s tag, `"<id>:<version>"`', documentation_only=True
)
CREATED_HEADERS = [
    ResponseHeader(name="Location", description="URL of the new record", documentation_only=True),
    _ETAG,
]
UPDATED_HEADERS = [_ETAG]

_WRITE_PROBLEMS: dict[int, ResponseSpec] = {
    400: problem("Malformed body: not JSON, a wrong type, an unknown field, a broken rule"),
    401: problem("No API key, or one that is unknown or revoked"),
    403: problem("The API key lacks the `write` scope"),
    413: problem("The body is larger than the server accepts"),
    422: problem("A reference to a record that does not exist, or a quote not in its source"),
    429: problem("Rate limit exceeded; retry after `Retry-After` seconds"),
    503: problem("The database is unavailable; retry after `Retry-After` seconds"),
}


def created_responses(record: type[msgspec.Struct], label: str) -> dict[int, ResponseSpec]:
    return {
        201: ResponseSpec(record, description=f"The new {label} (or the replay of the first response)"),
        409: problem("A request with this Idempotency-Key is still in progress, or a unique value is taken"),
        **_WRITE_PROBLEMS,
    }


def _precondition_problems() -> dict[int, ResponseSpec]:
    return {
        404: problem("No such record (or it was deleted)"),
        409: problem(
            "A unique value is taken; or (delete) live records still embed this organisation, named in `errors`"
        ),
        412: problem("`If-Match` does not name the current version: the record changed meanwhile"),
        428: problem("`If-Match` is required"),
    }


def updated_responses(record: type[msgspec.Struct], label: str) -> dict[int, ResponseSpec]:
    return {
        200: ResponseSpec(record, description=f"The {label} as updated"),
        **_precondition_problems(),
        **_WRITE_PROBLEMS,
    }


def deleted_responses() -> dict[int, ResponseSpec]:
    return {**_precondition_problems(), **_WRITE_PROBLEMS}


def document_write_headers(spec: dict[str, Any]) -> dict[str, Any]:
    """Add ``Location``/``ETag`` to the documented success responses of the writes (Litestar
    drops a handler's ``response_headers`` when ``responses`` documents its success status)."""
    wanted = {"create_": ("201", CREATED_HEADERS), "update_": ("200", UPDATED_HEADERS)}
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for prefix, (status, headers) in wanted.items():
                response = operation.get("responses", {}).get(status)
                if str(operation.get("operationId", "")).startswith(prefix) and isinstance(response, dict):
                    response["headers"] = {
                        h.name: {"description": h.description, "schema": {"type": "string"}} for h in headers
                    }
    return spec
