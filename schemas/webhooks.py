"""Webhooks: endpoints that receive every matching change of the feed, signed per the Standard
Webhooks specification, in feed order; and the record of every delivery attempt.

A request's URL is checked here for its syntax only (``https://host[:port]/path``, no
credentials, no fragment); whether its host may be called (a public address, unless the server
allows private ones) is the server's check, at creation and again at every delivery.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

from msgspec import UNSET, Meta, UnsetType, field

from secevents.schemas.changes import Change
from secevents.schemas.common import NO_NUL, Base, CountryCode, RequestBase
from secevents.schemas.incidents import IncidentType
from secevents.schemas.records import RecordType

__all__ = [
    "Webhook",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookDelivery",
    "WebhookDeliveryPage",
    "WebhookEvent",
    "WebhookFilters",
    "WebhookFiltersIn",
    "WebhookPage",
    "WebhookPatch",
]

_PORT = r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?"
_HOST = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
URL_PATTERN = rf"^https?://{_HOST}{_PORT}(/[!\"$-~]*)?$"
"""What a webhook URL looks like: http(s), a host name or an IPv4 address (IPv6 hosts by name),
an optional port and a path of printable ASCII (percent-encode the rest); no credentials (``@``
before the host), no fragment (``#``). ``http`` is accepted only by servers that allow private addresses (tests)."""

WebhookUrl = Annotated[
    str,
    Meta(
        min_length=10,
        max_length=2000,
        pattern=URL_PATTERN,
        description="Where deliveries are POSTed: `https://…` resolving to public addresses "
        "(a server configured for it also takes `http` and private addresses).",
        examples=["https://hooks.example.org/secevents"],
    ),
]
Description = Annotated[str, Meta(min_length=1, max_length=500, pattern=NO_NUL)]
EventTypes = Annotated[list[RecordType], Meta(min_length=1, max_length=4)]

WebhookEventType = Literal[
    "incident.created",
    "incident.updated",
    "incident.deleted",
    "organisation.created",
    "organisation.updated",
    "organisation.deleted",
    "statement.created",
    "statement.updated",
    "statement.deleted",
    "source.created",
    "source.updated",
    "source.deleted",
    "webhook.test",
]
"""``<record type>.<created|updated|deleted>`` for a change, ``webhook.test`` for the test event."""


class WebhookFilters(Base, kw_only=True):
    """Which incidents an endpoint receives, with the meaning of the incident list's filters,
    applied to each change's document: a repeated value means any of them, several filters
    must all match. Empty: every incident. They narrow incidents only: changes of the other
    types in ``types`` arrive whole. A delete carries no document and always passes them (a
    receiver that holds a copy must learn of it)."""

    country: list[str] = []
    """``location.country`` is one of these."""
    type: list[IncidentType] = []
    """The incident's ``type`` is one of these."""
    organisation: list[UUID] = []
    """One of these organisations took part (any role)."""


class WebhookFiltersIn(WebhookFilters, RequestBase, kw_only=True):
    country: Annotated[list[CountryCode], Meta(max_length=50)] = []
    type: Annotated[list[IncidentType], Meta(max_length=6)] = []
    organisation: Annotated[list[UUID], Meta(max_length=50)] = []

    @property
    def empty(self) -> bool:
        return not (self.country or self.type or self.organisation)


class WebhookCreate(RequestBase, kw_only=True):
    url: WebhookUrl
    types: EventTypes
    """Record types whose changes are delivered."""
    filters: WebhookFiltersIn | None = None
    description: Description | None = None


class WebhookPatch(RequestBase, kw_only=True):
    """Absent fields stay as they are; ``filters: null`` clears the filters. Setting ``enabled``
    to true again resumes delivery where it stopped (the change that failed is retried)."""

    url: WebhookUrl | UnsetType = UNSET
    types: EventTypes | UnsetType = UNSET
    filters: WebhookFiltersIn | UnsetType | None = UNSET
    description: Description | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET


class Webhook(Base, kw_only=True):
    """An endpoint. Deliveries go out in feed order: the change after ``cursor`` is retried
    (``attempts`` so far, next at ``next_attempt_at``) until it is delivered; an endpoint whose
    retries ran out is disabled (``enabled: false``) with the reason in ``disabled_reason``."""

    id: UUID
    url: str
    description: str | None = None
    types: list[RecordType]
    filters: WebhookFilters = field(default_factory=WebhookFilters)
    enabled: bool = True
    disabled_reason: str | None = None
    disabled_at: dt.datetime | None = None
    cursor: str
    """Every change up to this change-feed cursor has been delivered (or filtered out)."""
    attempts: int = 0
    """Failed attempts at the change after ``cursor``."""
    next_attempt_at: dt.datetime | None = None
    failing_since: dt.datetime | None = None
    last_delivered_at: dt.datetime | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


class WebhookCreated(Webhook, kw_only=True):
    secret: str
    """The signing secret (``whsec_<base64>``), shown this once: verify each delivery's
    ``webhook-signature`` with it (``secevents.webhooks.verify``)."""


class WebhookPage(Base, kw_only=True):
    data: list[Webhook]
    next_cursor: str | None = None


class WebhookDelivery(Base, kw_only=True):
    """One attempt to deliver one message to one endpoint."""

    id: int
    webhook_id: UUID
    message_id: str
    """The ``webhook-id`` header: the same on every attempt of one message."""
    event_type: WebhookEventType
    change_seq: int | None = None
    """The change's ``seq`` (``null`` for a test event)."""
    attempt: int
    attempted_at: dt.datetime
    succeeded: bool
    status_code: int | None = None
    """The receiver's HTTP status (``null`` when no response came)."""
    latency_ms: float | None = None
    error: str | None = None
    """Why the attempt failed: a non-2xx status, a timeout, a refused address…"""
    response_excerpt: str | None = None
    """The first bytes of the receiver's response body, at most 1 KiB."""


class WebhookDeliveryPage(Base, kw_only=True):
    data: list[WebhookDelivery]
    next_cursor: str | None = None


class WebhookEvent(Base, kw_only=True):
    """The body of every delivery (the Standard Webhooks payload shape). ``data`` is the change,
    exactly as ``GET /v1/changes`` lists it; ``null`` for a ``webhook.test`` event."""

    type: WebhookEventType
    timestamp: Annotated[dt.datetime, Meta(extra_json_schema={"format": "date-time"})]
    """When the change was committed (for a test event: when it was sent)."""
    webhook_id: UUID
    data: Change | None = None
