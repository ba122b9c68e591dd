"""``/v1/webhooks``: endpoints that receive the change feed, signed, in feed order (admin scope)."""

from __future__ import annotations

import base64
import secrets
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from secevents.schemas.webhooks import (
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookFiltersIn,
    WebhookPage,
    WebhookPatch,
)
from secevents.server.changes import reader as feed
from secevents.server.http.auth import WRITE_SECURITY, Principal
from secevents.server.http.errors import PROBLEM_RESPONSES, NotFound, problem
from secevents.server.settings import Settings
from secevents.server.webhooks import addresses, events, queries
from secevents.server.webhooks.sender import Sender

ADMIN = {"scope": "admin"}
SECRET_BYTES = 32

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Page size")]

_AUTH_PROBLEMS: dict[int, ResponseSpec] = {
    **PROBLEM_RESPONSES,
    401: problem("No API key"),
    403: problem("The key lacks the `admin` scope"),
    429: problem("Rate limit exceeded; retry after `Retry-After` seconds"),
}
_NOT_FOUND = {404: problem("No webhook endpoint with this id")}


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _filters(filters: WebhookFiltersIn | None) -> tuple[list[str], list[str], list[UUID]]:
    if filters is None:
        return [], [], []
    return sorted(set(filters.country)), sorted(set(filters.type)), sorted(set(filters.organisation))


async def _found(conn: asyncpg.Connection, sql: str, webhook_id: UUID) -> asyncpg.Record:
    row = await conn.fetchrow(sql, webhook_id)
    if row is None:
        raise NotFound(f"No webhook endpoint {webhook_id}.")
    return row


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]
    security = WRITE_SECURITY

    @post(
        "/",
        operation_id="create_webhook",
        opt=ADMIN,
        summary="Create a webhook endpoint",
        description="Changes committed from now on whose type is in `types` (and, for incidents, "
        "that pass `filters`) are POSTed to `url`, one message per change, in feed order, signed "
        "per the Standard Webhooks specification with the `secret` of the response — shown this "
        "once. A delivery that fails is retried with exponential backoff for more than 24 hours; "
        "then the endpoint is disabled. The URL must be `https` and resolve to public addresses "
        "(else 422 `webhook_url_refused`). Needs the `admin` scope.",
        status_code=201,
        responses={
            201: ResponseSpec(WebhookCreated, description="The endpoint, with its signing secret"),
            422: problem("The URL may not be called (not https, or not a public address)"),
            **_AUTH_PROBLEMS,
        },
    )
    async def create_webhook(
        self,
        data: JSONBody[WebhookCreate],
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
    ) -> Response[WebhookCreated]:
        await addresses.check(data.url, allow_private=settings.webhooks.allow_private)
        countries, types, organisations = _filters(data.filters)
        secret = new_secret()
        row = await conn.fetchrow(
            queries.INSERT,
            data.url,
            data.description,
            sorted(set(data.types)),
            countries,
            types,
            organisations,
            secret,
            await feed.head_cursor(conn),
            principal.actor,
        )
        created = msgspec.structs.asdict(queries.webhook(row))
        return Response(
            msgspec.convert({**created, "secret": secret}, WebhookCreated),
            status_code=201,
            headers={"Location": f"/v1/webhooks/{row['id']}"},
        )

    @get(
        "/",
        operation_id="list_webhooks",
        opt=ADMIN,
        summary="List webhook endpoints",
        description="Every endpoint, oldest first (secrets are never shown again). Needs the `admin` scope.",
        responses={200: ResponseSpec(WebhookPage, description="A page of endpoints"), **_AUTH_PROBLEMS},
    )
    async def list_webhooks(
        self,
        conn: NamedDependency[asyncpg.Connection],
        cursor: Annotated[
            UUID | None, QueryParameter(description="`next_cursor` of the previous page")
        ] = None,
        limit: Limit = 100,
    ) -> WebhookPage:
        rows = await conn.fetch(queries.LIST, cursor, limit + 1)
        data = [queries.webhook(r) for r in rows[:limit]]
        return WebhookPage(data=data, next_cursor=str(data[-1].id) if len(rows) > limit else None)

    @get(
        "/{webhook_id:uuid}",
        operation_id="get_webhook",
        opt=ADMIN,
        summary="Get a webhook endpoint",
        description="The endpoint and its delivery state. Needs the `admin` scope.",
        responses={200: ResponseSpec(Webhook, description="The endpoint"), **_AUTH_PROBLEMS, **_NOT_FOUND},
    )
    async def get_webhook(
        self, webhook_id: FromPath[UUID], conn: NamedDependency[asyncpg.Connection]
    ) -> Webhook:
        return queries.webhook(await _found(conn, queries.GET, webhook_id))

    @patch(
        "/{webhook_id:uuid}",
        operation_id="update_webhook",
        opt=ADMIN,
        summary="Change a webhook endpoint",
        description="Absent fields stay as they are; `filters: null` clears them. `enabled: false` "
        "pauses deliveries; `enabled: true` resumes them where they stopped, retrying the change "
        "that failed at once. Needs the `admin` scope.",
        responses={
            200: ResponseSpec(Webhook, description="The endpoint as changed"),
            422: problem("The URL may not be called (not https, or not a public address)"),
            **_AUTH_PROBLEMS,
            **_NOT_FOUND,
        },
    )
    async def update_webhook(
        self,
        webhook_id: FromPath[UUID],
        data: JSONBody[WebhookPatch],
        conn: NamedDependency[asyncpg.Connection],
        settings: NamedDependency[Settings],
    ) -> Webhook:
        if isinstance(data.url, str):
            await addresses.check(data.url, allow_private=settings.webhooks.allow_private)
        async with conn.transaction():
            current = queries.webhook(await _found(conn, queries.GET_FOR_UPDATE, webhook_id))
            types = current.types if isinstance(data.types, msgspec.UnsetType) else sorted(set(data.types))
            if isinstance(data.filters, msgspec.UnsetType):
                filters = current.filters
                countries, kinds, organisations = (
                    filters.country,
                    list[str](filters.type),
                    filters.organisation,
                )
            else:
                countries, kinds, organisations = _filters(data.filters)
            row = await conn.fetchrow(
                queries.UPDATE,
                webhook_id,
                current.url if isinstance(data.url, msgspec.UnsetType) else data.url,
                current.description if isinstance(data.description, msgspec.UnsetType) else data.description,
                types,
                countries,
                kinds,
                organisations,
                current.enabled if isinstance(data.enabled, msgspec.UnsetType) else data.enabled,
            )
        return queries.webhook(row)

    @delete(
        "/{webhook_id:uuid}",
        operation_id="delete_webhook",
        opt=ADMIN,
        summary="Delete a webhook endpoint",
        description="Deliveries stop; the endpoint and its delivery log are gone. Needs the `admin` scope.",
        responses={**_AUTH_PROBLEMS, **_NOT_FOUND},
    )
    async def delete_webhook(
        self, webhook_id: FromPath[UUID], conn: NamedDependency[asyncpg.Connection]
    ) -> None:
        await _found(conn, queries.DELETE, webhook_id)

    @post(
        "/{webhook_id:uuid}/test",
        operation_id="test_webhook",
        opt=ADMIN,
        summary="Send a test event",
        description="Sends one `webhook.test` event (`data: null`), signed like every delivery, "
        "now and outside the feed's order (also to a disabled endpoint), and answers with the "
        "attempt, which the delivery log lists too. Needs the `admin` scope.",
        status_code=200,
        responses={
            200: ResponseSpec(WebhookDelivery, description="The attempt: status, latency, error"),
            **_AUTH_PROBLEMS,
            **_NOT_FOUND,
        },
    )
    async def test_webhook(
        self, webhook_id: FromPath[UUID], request: Request[Any, Any, Any]
    ) -> WebhookDelivery:
        # No pooled connection is held while the receiver answers (up to the delivery timeout).
        pool: asyncpg.Pool = request.app.state.pool
        sender: Sender = request.app.state.webhook_sender
        async with pool.acquire() as conn:
            endpoint = await _found(conn, queries.SECRET_AND_URL, webhook_id)
        message_id, body = events.probe_message(webhook_id)
        outcome = await sender.send(
            endpoint["url"], secret=endpoint["secret"], message_id=message_id, body=body
        )
        try:
            async with pool.acquire() as conn:
                return await queries.record_delivery(
                    conn,
                    webhook_id,
                    message_id=message_id,
                    event_type=events.TEST_EVENT,
                    change_seq=None,
                    attempt=1,
                    outcome=outcome,
                )
        except asyncpg.ForeignKeyViolationError:
            raise NotFound(f"No webhook endpoint {webhook_id}.") from None

    @get(
        "/{webhook_id:uuid}/deliveries",
        operation_id="list_webhook_deliveries",
        opt=ADMIN,
        summary="List delivery attempts",
        description="Every attempt to deliver to this endpoint, newest first: when, the "
        "receiver's status code, latency, the error, and the first KiB of the answer. Needs the "
        "`admin` scope.",
        responses={
            200: ResponseSpec(WebhookDeliveryPage, description="A page of attempts"),
            **_AUTH_PROBLEMS,
            **_NOT_FOUND,
        },
    )
    async def list_webhook_deliveries(
        self,
        webhook_id: FromPath[UUID],
        conn: NamedDependency[asyncpg.Connection],
        cursor: Annotated[
            str | None,
            QueryParameter(description="`next_cursor` of the previous page", pattern=r"^[0-9]{1,18}$"),
        ] = None,
        limit: Limit = 100,
    ) -> WebhookDeliveryPage:
        await _found(conn, "SELECT id FROM webhook_endpoints WHERE id = $1", webhook_id)
        rows = await conn.fetch(
            queries.DELIVERIES, webhook_id, int(cursor) if cursor is not None else None, limit + 1
        )
        data = [queries.delivery(r) for r in rows[:limit]]
        return WebhookDeliveryPage(data=data, next_cursor=str(data[-1].id) if len(rows) > limit else None)
