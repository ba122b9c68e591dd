"""The attribution an export carries: the licence of each licensed source and the credit it asks
for (UCDP's data are CC BY 4.0 on condition that UCDP is cited), in every format.

Which sources: every live source with a licence, whatever the export selects — a superset of
the sources the exported records cite, and one indexed look-up instead of a walk over every
exported record's citations; credit given once too often is harmless, credit missing is not.
Each format carries them where a reader of that format looks first:

- NDJSON: one ``{"type": "attribution", …}`` line per source before the records (an import
  accepts and skips them; they are not counted by the ``export_complete`` line);
- CSV: one ``# attribution: …`` line per source before the header row (a reader skips them as
  comments, e.g. ``pandas.read_csv(…, comment="#")``);
- GeoJSON: an ``attribution`` member of the FeatureCollection (a foreign member, RFC 7946 §6.1);
- STIX 2.1: one ``marking-definition`` (``definition_type: statement``) per source.

An export of a database without licensed sources is the same as before.
"""

from __future__ import annotations

import uuid

import asyncpg
import msgspec

from secevents.schemas.imports import AttributionLine

LICENSED_SOURCES = """
SELECT id, title, licence, attribution FROM sources
 WHERE licence IS NOT NULL AND deleted_at IS NULL ORDER BY id
"""

_encode = msgspec.json.Encoder().encode


async def licensed_sources(conn: asyncpg.Connection) -> list[AttributionLine]:
    """The attribution of every live licensed source, in id order."""
    return [
        AttributionLine(
            source_id=r["id"], title=r["title"], licence=r["licence"], attribution=r["attribution"] or ""
        )
        for r in await conn.fetch(LICENSED_SOURCES)
    ]


def text(line: AttributionLine) -> str:
    """``UCDP Georeferenced Event Dataset (GED) — CC-BY-4.0 — <credit>`` on one line."""
    return " — ".join(part for part in (line.title, line.licence, " ".join(line.attribution.split())) if part)


def ndjson_lines(lines: list[AttributionLine]) -> bytes:
    return b"".join(_encode(line) + b"\n" for line in lines)


def csv_lines(lines: list[AttributionLine]) -> bytes:
    return b"".join(f"# attribution: {text(line)}\r\n".encode() for line in lines)


def geojson_member(lines: list[AttributionLine]) -> bytes:
    """``"attribution":[…],`` to follow the FeatureCollection's ``type`` (empty without any)."""
    if not lines:
        return b""
    items = [{"source_id": line.source_id, "licence": line.licence, "text": text(line)} for line in lines]
    return b'"attribution":' + _encode(items) + b","


STIX_NAMESPACE = uuid.UUID("0f5c8f3e-3c1e-4b5f-9a51-6d0e4c4a2b71")


def stix_marking(line: AttributionLine, created: str) -> dict[str, object]:
    """A STIX 2.1 statement marking holding the source's licence and credit."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": f"marking-definition--{uuid.uuid5(STIX_NAMESPACE, f'source:{line.source_id}')}",
        "created": created,
        "name": f"{line.licence}: {line.title}",
        "definition_type": "statement",
        "definition": {"statement": text(line)},
    }
