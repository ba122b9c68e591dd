"""What an endpoint receives: which changes pass its filters, and the message for each — the
Standard Webhooks payload shape ``{"type", "timestamp", "webhook_id", "data"}`` with the feed
entry as ``data``, byte for byte as ``GET /v1/changes`` lists it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import msgspec

PAST_TENSE = {"create": "created", "update": "updated", "delete": "deleted"}
TEST_EVENT = "webhook.test"
# Message ids are derived, not stored: the same change to the same endpoint always carries the
# same `webhook-id`, on every attempt, from every worker, across restarts.
_MESSAGE_NAMESPACE = uuid.UUID("6f1c3a52-8f0e-4d7e-9a51-0c2a7b9e4d10")


class _Location(msgspec.Struct):
    country: str | None = None


class _Participant(msgspec.Struct):
    organisation_id: UUID | None = None


class _IncidentDocument(msgspec.Struct):
    """The parts of an incident's document the filters look at."""

    type: str | None = None
    location: _Location = msgspec.field(default_factory=_Location)
    participants: list[_Participant] = []


class Entry(msgspec.Struct):
    """The parts of a feed entry the worker needs; ``data`` stays raw until a filter needs it."""

    seq: int
    type: str
    operation: str
    committed_at: dt.datetime
    deleted: bool = False
    data: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))

    @property
    def event_type(self) -> str:
        return f"{self.type}.{PAST_TENSE.get(self.operation, self.operation)}"


_entry_decoder = msgspec.json.Decoder(Entry)
_incident_decoder = msgspec.json.Decoder(_IncidentDocument)


def entry(raw: bytes) -> Entry:
    return _entry_decoder.decode(raw)


@dataclass(frozen=True, slots=True)
class Filters:
    """An endpoint's incident filters (empty: everything its ``types`` name)."""

    countries: frozenset[str]
    types: frozenset[str]
    organisations: frozenset[UUID]

    @classmethod
    def of(cls, countries: Sequence[str], types: Sequence[str], organisations: Sequence[UUID]) -> Filters:
        return cls(frozenset(countries), frozenset(types), frozenset(organisations))

    @property
    def empty(self) -> bool:
        return not (self.countries or self.types or self.organisations)

    def match(self, change: Entry) -> bool:
        """The incident list's meaning, on an incident change's document. Other record types
        pass (the filters narrow incidents only), and so does a delete, which carries no
        document (a receiver holding a copy must learn of it)."""
        if self.empty or change.type != "incident" or change.deleted:
            return True
        document = _incident_decoder.decode(change.data)
        if self.countries and document.location.country not in self.countries:
            return False
        if self.types and document.type not in self.types:
            return False
        return not self.organisations or any(
            p.organisation_id in self.organisations for p in document.participants
        )


def message_id(webhook_id: UUID, seq: int) -> str:
    return "msg_" + uuid.uuid5(_MESSAGE_NAMESPACE, f"{webhook_id}/{seq}").hex


def change_message(webhook_id: UUID, change: Entry, raw: bytes) -> bytes:
    """The body delivered for a change: the feed entry ``raw`` untouched inside the envelope."""
    head = msgspec.json.encode(
        {"type": change.event_type, "timestamp": change.committed_at, "webhook_id": webhook_id}
    )
    return head[:-1] + b',"data":' + raw + b"}"


def probe_message(webhook_id: UUID) -> tuple[str, bytes]:
    """(message id, body) of a test event: ``data`` is null."""
    now = dt.datetime.now(dt.UTC)
    body = msgspec.json.encode({"type": TEST_EVENT, "timestamp": now, "webhook_id": webhook_id, "data": None})
    return "msg_" + uuid.uuid4().hex, body
