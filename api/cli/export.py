"""``secevents export …``: the API's export endpoint, called in this process.

The command builds the query string ``GET /v1/exports/<resource>`` takes from its options and
hands the request to the app itself (an ASGI call, no network): every filter is parsed, checked
and refused exactly as over HTTP, with the API's own message (``--country Pakistan`` says what
``?country=Pakistan`` says), and new filters need nothing here (``--filter NAME=VALUE``). The
body is written to the output as the app streams it, so memory stays flat in the export's size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, TextIO
from urllib.parse import urlencode

from secevents.server import db
from secevents.server.cli.errors import FAILED, USAGE, CliError
from secevents.server.exports import formats
from secevents.server.settings import Settings

RunWithDatabase = Callable[[Settings, Callable[[str], Any]], Any]
# Options that are query parameters under their own name (dashes → underscores).
NAMED_FILTERS = ("country", "type", "occurred_after", "occurred_before", "updated_after")
_NEVER = 365 * 24 * 3600.0


def add_parser(commands: Any, run_with_database: RunWithDatabase) -> None:
    export = commands.add_parser(
        "export",
        help="write records as NDJSON, CSV, GeoJSON or STIX 2.1",
        description="Write every record matching the filters (those of GET /v1/<resource>; checked "
        "as the API checks them) as NDJSON, CSV, GeoJSON or STIX 2.1.",
    )
    export.add_argument(
        "resource",
        choices=[*formats.TABLES, formats.ALL],
        help="what to export (`all`: every resource, as NDJSON that imports into an empty database "
        "or as one STIX bundle; no filters)",
    )
    export.add_argument("--format", dest="export_format", choices=list(formats.WRITERS), default="ndjson")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    export.add_argument(
        "--country", action="append", default=[], help="ISO 3166-1 alpha-2 code, e.g. PK (repeatable)"
    )
    export.add_argument("--type", action="append", default=[], help="incident type, e.g. battle (repeatable)")
    export.add_argument(
        "--occurred-after", action="append", default=[], metavar="DATE", help="incidents from this date"
    )
    export.add_argument(
        "--occurred-before", action="append", default=[], metavar="DATE", help="incidents up to this date"
    )
    export.add_argument(
        "--updated-after",
        action="append",
        default=[],
        metavar="INSTANT",
        help="records changed after this instant (e.g. 2024-06-01T00:00:00Z)",
    )
    export.add_argument(
        "--bom", action="store_true", help="CSV for Excel: start with a UTF-8 byte order mark"
    )
    export.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other filter of the list, e.g. --filter q=drone --filter min_killed=10 (repeatable)",
    )

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        query = _query(args)
        if args.export_format == "geojson" and args.resource != "incidents":
            raise CliError("--format geojson is for incidents only", USAGE)
        if args.output is not None and not args.output.parent.is_dir():
            raise CliError(f"{args.output}: no such folder {str(args.output.parent)!r}")
        result: int = run_with_database(
            settings, lambda url: asyncio.run(_export(settings, url, args, query))
        )
        return result

    export.set_defaults(handler=handler)


def _query(args: argparse.Namespace) -> list[tuple[str, str]]:
    query = [(name, value) for name in NAMED_FILTERS for value in getattr(args, name)]
    if args.bom:
        query.append(("bom", "true"))
    for item in args.filter:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise CliError(f"--filter takes NAME=VALUE, not {item!r}", USAGE)
        query.append((name, value))
    return query


async def _export(
    settings: Settings, url: str, args: argparse.Namespace, query: list[tuple[str, str]]
) -> int:
    from secevents.server.app import create_app

    await asyncio.to_thread(db.upgrade, url)
    app = create_app(
        replace(
            settings,
            database=replace(settings.database, url=url, migrate_on_start=False, seed_on_start=False),
            # This process already has the database: no key, no rate limit for its own requests,
            # and its reader (a pipe into `less`, say) may pause as long as it likes.
            api=replace(
                settings.api,
                public_reads=True,
                rate_limit_window_seconds=0,
                metrics_enabled=False,
                max_exports_per_client=settings.api.max_exports,
                export_stall_timeout=_NEVER,
            ),
        )
    )
    # One request, no access log line for it (the app configured logging when it was built).
    logging.getLogger("secevents.access").setLevel(logging.WARNING)
    counter = ExportCounter(sys.stderr, shown=not args.quiet)
    token = formats.rows_exported.set(counter.add)
    try:
        async with app.lifespan():
            # Raised after the lifespan, which would wrap it in an exception group.
            refused = await _write(app, args.resource, args, query)
    finally:
        formats.rows_exported.reset(token)
        counter.stop()
    if refused is not None:
        raise refused
    counter.summary(f"export {args.resource}", args.output)
    return 0


class ExportCounter:
    """Rows written by an export: a running count on a terminal, then one summary line (on
    standard error, so standard output stays the export itself)."""

    def __init__(self, stream: TextIO, *, shown: bool = True) -> None:
        self.stream, self.shown = stream, shown
        self.live = shown and stream.isatty()
        self.rows = 0
        self.started = time.perf_counter()
        self._next_report = self.started

    def add(self) -> None:
        self.rows += 1
        if self.live and (now := time.perf_counter()) >= self._next_report:
            self._next_report = now + 0.2
            print(f"\r{self.rows:,} rows written", end="", file=self.stream, flush=True)

    def stop(self) -> None:
        if self.live and self.rows:
            print("\r\x1b[K", end="", file=self.stream, flush=True)  # clear the running count

    def summary(self, what: str, output: Path | None) -> None:
        if not self.shown:
            return
        seconds = time.perf_counter() - self.started
        where = f" to {output}" if output is not None else ""
        print(f"{what}: {self.rows:,} records written{where} in {seconds:.2f} s", file=self.stream)


async def _write(
    app: Any, resource: str, args: argparse.Namespace, query: list[tuple[str, str]]
) -> CliError | None:
    params = [*query, ("format", args.export_format)]
    # The request is checked before the output file is opened: the export is started and dropped
    # (the client "disconnects") as soon as the app accepts it.
    status, body = await _call(app, f"/v1/exports/{resource}", params)
    if status != 200:
        return _refused(resource, status, body)
    target: BinaryIO = args.output.open("wb") if args.output else sys.stdout.buffer
    try:
        status, body = await _call(app, f"/v1/exports/{resource}", params, sink=target.write)
        if status != 200:
            return _refused(resource, status, body)
    except BrokenPipeError:  # `secevents export … | head`: the reader has had enough
        return None
    finally:
        if args.output:
            target.close()
        else:
            target.flush()
    return None


def _refused(resource: str, status: int, body: bytes) -> CliError:
    """The API's problem as one line: 'country: 'Pakistan' is not an ISO 3166-1 alpha-2 code'."""
    try:
        problem = json.loads(body)
    except ValueError:
        problem = {}
    details = [
        f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message"))
        for e in problem.get("errors") or ()
    ]
    message = "; ".join(details) or problem.get("detail") or problem.get("title") or f"HTTP {status}"
    code = USAGE if 400 <= status < 500 else FAILED
    return CliError(f"export {resource}: {message}", code)


async def _call(
    app: Any, path: str, query: list[tuple[str, str]], sink: Callable[[bytes], object] | None = None
) -> tuple[int, bytes]:
    """``GET path?query`` through the app's ASGI interface. A 200's body goes to ``sink`` chunk
    by chunk as the app sends it — without a sink the client disconnects as soon as the 200
    starts; any other body is returned."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(query).encode(),
        "root_path": "",
        "headers": [(b"host", b"secevents-cli"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 0),
        "server": ("secevents-cli", 80),
        "state": {},
    }
    status = 0
    kept: list[bytes] = []
    finished = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            if status == 200 and sink is None:
                finished.set()  # receive() now says the client has gone
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if status != 200:
                kept.append(chunk)
            elif sink is not None and chunk:
                sink(chunk)
            if not message.get("more_body", False):
                finished.set()

    try:
        await app(scope, receive, send)
    finally:
        finished.set()
    return status, b"".join(kept)
