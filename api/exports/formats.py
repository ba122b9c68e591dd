"""Export streams: records read through a server-side cursor, written out as they come.

Memory stays flat whatever the number of rows: a cursor inside a transaction fetches
:data:`FETCH_ROWS` rows at a time and each row is encoded and handed on before the next batch.
Every format ends with something that says the export is complete (a trailer line, or the
closing of the JSON document), so a stream cut short is detectable by any reader.

- ``ndjson``: one ``{"type": …, "record": {…}}`` line per record — the import format, so an export
  of every resource imports as is into another database — then ``{"type":"export_complete",
  "count":N}``;
- ``csv``: one row per record, then ``# export_complete: N records``. Nested values of a fixed
  shape are columns of their own (``occurred_start``, ``casualties_killed_best``, the casualty
  breakdown by group: ``casualties_civilians_killed_best``…); lists and open maps (participants,
  citations, external ids) are compact JSON in their cell. Text a spreadsheet would evaluate as a
  formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return: OWASP's CSV-injection
  rule) is prefixed with ``'``, so it shows as text; numbers are left as they are. ``bom=true``
  starts the file with a UTF-8 byte order mark, which Excel needs to read non-ASCII names right;
- ``geojson``: incidents as a FeatureCollection of points (``null`` geometry without coordinates);
  properties flat and typed for GIS filters (:data:`GEOJSON_PROPERTIES`: dates, type, country,
  admin1/admin2, precision, killed/injured low/best/high as numbers) and the record in ``detail``;
- ``stix``: a STIX 2.1 bundle (:mod:`secevents.server.exports.stix`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import msgspec

from secevents.server import resources
from secevents.server.exports import attribution, stix
from secevents.server.reads.filters import SqlBuilder

Resource = Literal["incidents", "organisations", "statements", "sources"]
Format = Literal["ndjson", "csv", "geojson", "stix"]
FETCH_ROWS = 500
FLUSH_BYTES = 1 << 16

MEDIA_TYPES: dict[str, str] = {
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",  # Litestar adds `; charset=utf-8` to text/* (it was doubled)
    "geojson": "application/geo+json",
    "stix": "application/stix+json;version=2.1",
}
EXTENSIONS = {"ndjson": "ndjson", "csv": "csv", "geojson": "geojson", "stix": "stix.json"}


@dataclass(frozen=True, slots=True)
class Table:
    """An exportable resource, read from its descriptor (``resources.ALL``)."""

    record_type: str
    table: str
    alias: str
    csv_columns: tuple[tuple[str, str], ...]
    """(header, dotted path in the document)."""


TABLES: dict[str, Table] = {
    r.collection: Table(r.record.record_type, r.record.table, r.record.alias, r.export_columns)
    for r in resources.ALL
}

Filters = Any
"""A resource's filters (``api/resources/<r>/filters.py``): anything with ``apply(SqlBuilder)``."""


def where_sql(resource: str, filters: Filters | None) -> tuple[str, list[Any]]:
    """The condition (and its arguments) that selects the exported records of ``resource``."""
    table = TABLES[resource]
    sql = SqlBuilder()
    if filters is not None:
        filters.apply(sql)  # also restricts to live records
    else:
        sql.where(f"{table.alias}.deleted_at IS NULL")
    return sql.where_sql(), sql.args


def select_sql(resource: str, filters: Filters | None, columns: str) -> tuple[str, list[Any]]:
    table = TABLES[resource]
    where, args = where_sql(resource, filters)
    return f"SELECT {columns} FROM {table.table} {table.alias} WHERE {where} ORDER BY {table.alias}.id", args


# Told of every row an export reads, in this context: how the command line counts what it writes
# (``secevents.server.cli.export``, which calls the app in-process). None for HTTP clients.
rows_exported: ContextVar[Callable[[], None] | None] = ContextVar("rows_exported", default=None)


async def _rows(conn: asyncpg.Connection, sql: str, args: list[Any]) -> AsyncIterator[asyncpg.Record]:
    counted = rows_exported.get()
    if conn.is_in_transaction():  # the caller holds the snapshot (see exports.streaming)
        async for row in conn.cursor(sql, *args, prefetch=FETCH_ROWS):
            if counted is not None:
                counted()
            yield row
        return
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        async for row in conn.cursor(sql, *args, prefetch=FETCH_ROWS):
            if counted is not None:
                counted()
            yield row


async def _buffered(parts: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Join small pieces into chunks of about :data:`FLUSH_BYTES` (fewer, larger writes)."""
    buffer = bytearray()
    async for part in parts:
        buffer += part
        if len(buffer) >= FLUSH_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


async def _ndjson(conn: asyncpg.Connection, resource: str, filters: Filters | None) -> AsyncIterator[bytes]:
    table = TABLES[resource]
    sql, args = select_sql(resource, filters, f"{table.alias}.doc")
    head = b'{"type":"' + table.record_type.encode() + b'","record":'
    yield attribution.ndjson_lines(await attribution.licensed_sources(conn))
    count = 0
    async for row in _rows(conn, sql, args):
        count += 1
        yield head + row[0] + b"}\n"
    yield ndjson_trailer(count)


def ndjson_trailer(count: int) -> bytes:
    """The last line of a complete NDJSON export: ``{"type":"export_complete","count":N}``
    (``N`` records before it). A stream cut short lacks it; the importer checks ``count``."""
    return b'{"type":"export_complete","count":%d}\n' % count


def csv_trailer(count: int) -> bytes:
    """The last line of a complete CSV export, ``# export_complete: N records`` (no record's
    first cell, an id, starts with ``#``)."""
    return b"# export_complete: %d records\r\n" % count


FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP, CSV injection)."""
UTF8_BOM = "\ufeff".encode()


def _step(value: Any, key: str) -> Any:
    """One step of a column's path: a key of an object, or ``[group=civilians]``, the element of a
    list of objects whose ``group`` is ``civilians``."""
    if key.startswith("[") and isinstance(value, list):
        field, _, wanted = key[1:-1].partition("=")
        return next((item for item in value if isinstance(item, dict) and item.get(field) == wanted), None)
    return value.get(key) if isinstance(value, dict) else None


def _cell(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for key in path.split("."):
        value = _step(value, key)
    if isinstance(value, list | dict):
        return msgspec.json.encode(value).decode()
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value  # shown as text; a reader strips the quote to get the value back
    return value


async def _csv(
    conn: asyncpg.Connection, resource: str, filters: Filters | None, *, bom: bool = False
) -> AsyncIterator[bytes]:
    table = TABLES[resource]
    sql, args = select_sql(resource, filters, f"{table.alias}.doc")
    if bom:
        yield UTF8_BOM  # first, before anything else: Excel looks for it in the first bytes
    yield attribution.csv_lines(await attribution.licensed_sources(conn))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header for header, _ in table.csv_columns])
    count = 0
    async for row in _rows(conn, sql, args):
        document = msgspec.json.decode(row[0])
        writer.writerow([_cell(document, path) for _, path in table.csv_columns])
        count += 1
        if out.tell() >= FLUSH_BYTES:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode() + csv_trailer(count)


def _doc(*path: str) -> str:
    return "i.doc" + "".join(f"->'{key}'" for key in path)


# Flat, typed properties GIS tools filter and style on (GDAL reads dates as Date/DateTime and
# counts as Integer), then the whole record, nested, in `detail`.
GEOJSON_PROPERTIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("id", ("id",)),
    ("version", ("version",)),
    ("title", ("title",)),
    ("type", ("type",)),
    ("subtype", ("subtype",)),
    ("occurred_start", ("occurred", "start")),
    ("occurred_end", ("occurred", "end")),
    ("occurred_precision", ("occurred", "precision")),
    ("country", ("location", "country")),
    ("admin1", ("location", "admin1")),
    ("admin2", ("location", "admin2")),
    ("place", ("location", "place")),
    ("location_precision", ("location", "precision")),
    *(
        (f"{what}_{bound}", ("casualties", what, bound))
        for what in ("killed", "injured")
        for bound in ("low", "best", "high")
    ),
    ("updated_at", ("updated_at",)),
)
GEOJSON_FEATURE = f"""json_build_object(
  'type', 'Feature', 'id', i.id,
  'geometry', CASE WHEN i.lat IS NULL THEN NULL
                   ELSE json_build_object('type', 'Point', 'coordinates', json_build_array(i.lon, i.lat)) END,
  'properties', json_build_object({", ".join(f"'{name}', {_doc(*path)}" for name, path in GEOJSON_PROPERTIES)},
                                  'detail', i.doc))"""


async def _geojson(conn: asyncpg.Connection, resource: str, filters: Filters | None) -> AsyncIterator[bytes]:
    sql, args = select_sql(resource, filters, GEOJSON_FEATURE)
    credits = attribution.geojson_member(await attribution.licensed_sources(conn))
    yield b'{"type":"FeatureCollection",' + credits + b'"features":['
    separator = b""
    async for row in _rows(conn, sql, args):
        yield separator + row[0]
        separator = b","
    yield b"]}\n"


async def _stix(conn: asyncpg.Connection, resource: str, filters: Filters | None) -> AsyncIterator[bytes]:
    """The bundle of the selected records and of every record they refer to
    (:func:`stix.referenced_parts`), all read in the export's one snapshot."""
    table = TABLES[resource]
    where, args = where_sql(resource, filters)
    main_ids = f"SELECT {table.alias}.id FROM {table.table} {table.alias} WHERE {where}"
    sql, _ = select_sql(resource, filters, stix.COLUMNS[table.record_type])
    main = stix.Part(table.record_type, sql, tuple(args), with_relationships=True)
    parts = [main, *stix.referenced_parts(table.record_type, main_ids, args)]
    async for chunk in _bundle(conn, stix.bundle_id(resource, sql, args), parts):
        yield chunk


async def _bundle(conn: asyncpg.Connection, bundle_id: str, parts: list[stix.Part]) -> AsyncIterator[bytes]:
    yield b'{"type":"bundle","id":"' + bundle_id.encode() + b'","objects":['
    yield b",".join(msgspec.json.encode(item) for item in stix.PREAMBLE)
    for line in await attribution.licensed_sources(conn):
        yield b"," + msgspec.json.encode(attribution.stix_marking(line, stix.EPOCH))
    for part in parts:
        async for row in _rows(conn, part.sql, list(part.args)):
            for item in stix.objects(part.record_type, row, part.with_relationships):
                yield b"," + msgspec.json.encode(item)
    yield b"]}\n"


WRITERS: dict[str, Callable[[asyncpg.Connection, str, Filters | None], AsyncIterator[bytes]]] = {
    "ndjson": _ndjson,
    "csv": _csv,
    "geojson": _geojson,
    "stix": _stix,
}


def export(
    conn: asyncpg.Connection, resource: str, fmt: str, filters: Filters | None, *, bom: bool = False
) -> AsyncIterator[bytes]:
    """The export as a stream of byte chunks. GeoJSON is for incidents only (checked by the
    caller); ``bom`` is for CSV only."""
    if fmt == "csv":
        return _buffered(_csv(conn, resource, filters, bom=bom))
    return _buffered(WRITERS[fmt](conn, resource, filters))


ALL = "all"
ALL_ORDER = ("sources", "organisations", "incidents", "statements")
"""The resources of ``GET /v1/exports/all``, referenced records first (the NDJSON imports in order)."""
ALL_FORMATS = ("ndjson", "stix")


async def _ndjson_all(conn: asyncpg.Connection) -> AsyncIterator[bytes]:
    yield attribution.ndjson_lines(await attribution.licensed_sources(conn))
    count = 0
    for resource in ALL_ORDER:
        table = TABLES[resource]
        sql, args = select_sql(resource, None, f"{table.alias}.doc")
        head = b'{"type":"' + table.record_type.encode() + b'","record":'
        async for row in _rows(conn, sql, args):
            count += 1
            yield head + row[0] + b"}\n"
    yield ndjson_trailer(count)


async def _stix_all(conn: asyncpg.Connection) -> AsyncIterator[bytes]:
    parts = []
    for resource in ALL_ORDER:
        table = TABLES[resource]
        sql, args = select_sql(resource, None, stix.COLUMNS[table.record_type])
        parts.append(stix.Part(table.record_type, sql, tuple(args), with_relationships=True))
    # Every live record is in: each reference (all to live records) ends inside the bundle.
    async for chunk in _bundle(conn, stix.bundle_id(ALL, "", []), parts):
        yield chunk


def export_all(conn: asyncpg.Connection, fmt: str) -> AsyncIterator[bytes]:
    """Every live record of every resource, in one NDJSON file (one trailer) or one STIX bundle."""
    return _buffered(_stix_all(conn) if fmt == "stix" else _ndjson_all(conn))


def filename(resource: str, fmt: str) -> str:
    return f"{resource}.{EXTENSIONS[fmt]}"
