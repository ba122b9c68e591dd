"""``secevents import ucdp|ndjson …``."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secevents.server import db
from secevents.server.importers import commands
from secevents.server.settings import Settings

RunWithDatabase = Callable[[Settings, Callable[[str], Any]], Any]


def add_parser(commands_: Any, run_with_database: RunWithDatabase) -> None:
    importing = commands_.add_parser("import", help="bulk-load records (all or nothing per file)")
    kinds = importing.add_subparsers(dest="import_kind", required=True)
    ucdp = kinds.add_parser("ucdp", help="UCDP GED CSV files (GED 49-column or HDX extract layout)")
    ucdp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ucdp.add_argument(
        "--skip-invalid",
        action="store_true",
        help="import the valid rows of a file and report the rejected ones (default: reject the file)",
    )
    ucdp.add_argument(
        "--release",
        metavar="RELEASE",
        help="the GED release of the files, e.g. 25.1 (default: what the file name says, "
        "GEDEvent_v25_1.csv; else unknown). A newer release's incidents are never overwritten",
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


async def _import(url: str, args: argparse.Namespace) -> int:
    await asyncio.to_thread(db.upgrade, url)
    out, err = commands.default_streams()
    if args.import_kind == "ucdp":
        return await commands.import_ucdp(
            url,
            args.files,
            skip_invalid=args.skip_invalid,
            exclusive=args.exclusive,
            release=args.release,
            out=out,
            err=err,
        )
    return await commands.import_ndjson(url, args.file, exclusive=args.exclusive, out=out, err=err)
