"""Reference checks of a request body, before it is written: every organisation, incident and
source it names must exist (and not be deleted), and every citation quote must be found in its
source's text when the source holds one. Failures are a 422 naming each field
(``participants[1].organisation_id``, ``citations[0].quote``); the foreign keys and the
``citation_quote_in_source`` trigger stay as the safety net behind these checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import msgspec

from secevents.schemas.common import CitationIn
from secevents.schemas.problems import FieldError
from secevents.server.http.errors import UnprocessableEntity

# Body fields that hold ids of other records, by the record type they point at.
REFERENCE_FIELDS: dict[str, str] = {
    "organisation_id": "organisation",
    "organisation_ids": "organisation",
    "issuer_id": "organisation",
    "addressed_to_id": "organisation",
    "related_incident_ids": "incident",
}


class InvalidReference(UnprocessableEntity):
    code, title = "invalid_reference", "The body refers to something that does not exist or does not match"


_MISSING = """
SELECT t.ord::int
  FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS t(kind, id, ord)
 WHERE NOT CASE t.kind
   WHEN 'organisation' THEN EXISTS (SELECT 1 FROM organisations o WHERE o.id = t.id AND o.deleted_at IS NULL)
   WHEN 'incident' THEN EXISTS (SELECT 1 FROM incidents i WHERE i.id = t.id AND i.deleted_at IS NULL)
   WHEN 'source' THEN EXISTS (SELECT 1 FROM sources s WHERE s.id = t.id AND s.deleted_at IS NULL)
 END
 ORDER BY t.ord
"""

_QUOTES_NOT_IN_SOURCE = """
SELECT t.ord::int
  FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS t(source_id, quote, ord)
  JOIN sources s ON s.id = t.source_id
 WHERE s.text IS NOT NULL AND strpos(s.text, t.quote) = 0
 ORDER BY t.ord
"""


@dataclass(slots=True)
class _Found:
    references: list[tuple[str, str, UUID]] = field(default_factory=list)  # (field, kind, id)
    quotes: list[tuple[str, UUID, str]] = field(default_factory=list)  # (field, source id, quote)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _collect(value: object, path: str, found: _Found) -> None:
    if isinstance(value, CitationIn):
        found.references.append((_join(path, "source_id"), "source", value.source_id))
        found.quotes.append((_join(path, "quote"), value.source_id, value.quote))
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            item = getattr(value, name)
            if item is msgspec.UNSET or item is None:
                continue
            where = _join(path, name)
            kind = REFERENCE_FIELDS.get(name)
            if kind is not None and isinstance(item, UUID):
                found.references.append((where, kind, item))
            elif kind is not None and isinstance(item, list):
                found.references.extend((f"{where}[{i}]", kind, x) for i, x in enumerate(item))
            else:
                _collect(item, where, found)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _collect(item, f"{path}[{i}]", found)


def _duplicate_participants(body: msgspec.Struct) -> list[FieldError]:
    participants = getattr(body, "participants", msgspec.UNSET)
    if not isinstance(participants, list):
        return []
    seen: set[tuple[UUID, str]] = set()
    errors = []
    for i, p in enumerate(participants):
        if (p.organisation_id, p.role) in seen:
            errors.append(
                FieldError(field=f"participants[{i}]", message="the same organisation and role appear twice")
            )
        seen.add((p.organisation_id, p.role))
    return errors


def _duplicate_ids(body: msgspec.Struct, name: str) -> list[FieldError]:
    ids = getattr(body, name, msgspec.UNSET)
    if not isinstance(ids, list):
        return []
    return [
        FieldError(field=f"{name}[{i}]", message="this id appears earlier in the list")
        for i, x in enumerate(ids)
        if x in ids[:i]
    ]


def _self_references(body: msgspec.Struct, record_id: UUID | None) -> list[FieldError]:
    relationships = getattr(body, "relationships", msgspec.UNSET)
    if record_id is None or not isinstance(relationships, list):
        return []
    return [
        FieldError(
            field=f"relationships[{i}].organisation_id", message="an organisation cannot relate to itself"
        )
        for i, r in enumerate(relationships)
        if r.organisation_id == record_id
    ]


async def check(conn: asyncpg.Connection, body: msgspec.Struct, *, record_id: UUID | None = None) -> None:
    """Raise a 422 listing every dangling reference and misquoted citation in ``body``."""
    found = _Found()
    _collect(body, "", found)
    errors = [
        *_duplicate_participants(body),
        *_duplicate_ids(body, "related_incident_ids"),
        *_self_references(body, record_id),
    ]
    if found.references:
        missing = await conn.fetch(
            _MISSING, [kind for _, kind, _ in found.references], [i for _, _, i in found.references]
        )
        for row in missing:
            where, kind, ref = found.references[row[0] - 1]
            errors.append(FieldError(field=where, message=f"no {kind} with id {ref}"))
    if found.quotes:
        misquoted = await conn.fetch(
            _QUOTES_NOT_IN_SOURCE, [s for _, s, _ in found.quotes], [q for _, _, q in found.quotes]
        )
        for row in misquoted:
            where, source_id, _ = found.quotes[row[0] - 1]
            errors.append(
                FieldError(field=where, message=f"the quote is not in the text of source {source_id}")
            )
    if errors:
        raise InvalidReference("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)
