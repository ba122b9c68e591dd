"""``secevents import ucdp|ndjson …`` and ``secevents export …``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from secevents.server import db
from secevents.server.exports import formats
from secevents.server.importers import commands
from secevents.server.resources.incidents.filters import IncidentFilters
from secevents.server.resources.organisations.filters import OrganisationFilters
from secevents.server.resources.sources.filters import SourceFilters
from secevents.server.resources.statements.filters import StatementFilters
from secevents.server.settings import Settings

RunWithDatabase = Callable[[Settings, Callable[[str], Any]], Any]
# `all` writes every resource, referenced records first, so the file imports into an empty database.
ALL_RESOURCES = ("sources", "organisations", "incidents", "statements")


def add_parsers(commands_: Any, run_with_database: RunWithDatabase) -> None:
    importing = commands_.add_parser("import", help="bulk-load records (all or nothing per file)")
    kinds = importing.add_subparsers(dest="import_kind", required=True)
    ucdp = kinds.add_parser("ucdp", help="UCDP GED CSV files (GED 49-column or HDX extract layout)")
    ucdp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ucdp.add_argument(
        "--skip-invalid",
        action="store_true",
        help="import the valid rows of a file and report the rejected ones (default: reject the file)",
    )
    ndjson = kinds.add_parser("ndjson", help="NDJSON of records in the API's shapes (what export writes)")
    ndjson.add_argument("file", type=Path, metavar="FILE")
    for parser in (ucdp, ndjson):
        parser.add_argument(
            "--exclusive",
            action="store_true",
            help="faster for large loads: lock the incident tables while writing and rebuild their "
            "indexes afterwards (API requests on those tables wait until the import commits)",
        )

    def import_handler(args: argparse.Namespace, settings: Settings) -> int:
        result: int = run_with_database(settings, lambda url: asyncio.run(_import(url, args)))
        return result

    importing.set_defaults(handler=import_handler)

    export = commands_.add_parser("export", help="write records as NDJSON, CSV, GeoJSON or STIX 2.1")
    export.add_argument(
        "resource", choices=[*formats.TABLES, "all"], help="what to export (`all`: NDJSON only)"
    )
    export.add_argument("--format", dest="export_format", choices=list(formats.WRITERS), default="ndjson")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    export.add_argument("--country", action="append", default=[], help="ISO alpha-2 code (repeatable)")
    export.add_argument(
        "--type", dest="types", action="append", default=[], help="incident type (repeatable)"
    )
    export.add_argument("--occurred-after", type=dt.date.fromisoformat, help="incidents from this date")
    export.add_argument("--occurred-before", type=dt.date.fromisoformat, help="incidents up to this date")
    export.add_argument(
        "--updated-after", type=dt.datetime.fromisoformat, help="records changed after this instant"
    )

    def export_handler(args: argparse.Namespace, settings: Settings) -> int:
        problem = _check_export(args)
        if problem:
            print(problem, file=sys.stderr)
            return 2
        result: int = run_with_database(settings, lambda url: asyncio.run(_export(url, args)))
        return result

    export.set_defaults(handler=export_handler)


async def _import(url: str, args: argparse.Namespace) -> int:
    await asyncio.to_thread(db.upgrade, url)
    out, err = commands.default_streams()
    if args.import_kind == "ucdp":
        return await commands.import_ucdp(
            url, args.files, skip_invalid=args.skip_invalid, exclusive=args.exclusive, out=out, err=err
        )
    return await commands.import_ndjson(url, args.file, exclusive=args.exclusive, out=out, err=err)


def _check_export(args: argparse.Namespace) -> str | None:
    if args.export_format == "geojson" and args.resource != "incidents":
        return "--format geojson is for incidents only"
    if args.resource == "all" and args.export_format != "ndjson":
        return "`export all` writes NDJSON only"
    if args.updated_after is not None and args.updated_after.tzinfo is None:
        return "--updated-after needs a time zone (e.g. 2024-01-01T00:00:00+00:00)"
    return None


def _filters(resource: str, args: argparse.Namespace) -> Any:
    country = tuple(args.country)
    if resource == "incidents":
        return IncidentFilters(
            occurred_after=args.occurred_after,
            occurred_before=args.occurred_before,
            country=country,
            type=tuple(args.types),
            updated_after=args.updated_after,
        )
    if resource == "organisations":
        return OrganisationFilters(country=country, updated_after=args.updated_after)
    if resource == "statements":
        return StatementFilters(updated_after=args.updated_after)
    return SourceFilters(updated_after=args.updated_after)


async def _export(url: str, args: argparse.Namespace) -> int:
    await asyncio.to_thread(db.upgrade, url)
    resources = ALL_RESOURCES if args.resource == "all" else (args.resource,)
    target: BinaryIO = args.output.open("wb") if args.output else sys.stdout.buffer
    try:
        async with commands.connect(url) as conn:
            for resource in resources:
                async for chunk in formats.export(
                    conn, resource, args.export_format, _filters(resource, args)
                ):
                    target.write(chunk)
    except BrokenPipeError:  # `secevents export … | head`: the reader has had enough
        return 0
    finally:
        if args.output:
            target.close()
        else:
            target.flush()
    return 0
