"""The ``secevents`` command: serve the API, manage the database and API keys, import, export."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from secevents.server import db
from secevents.server.cli import bulk as bulk_cli
from secevents.server.cli import errors
from secevents.server.cli import export as export_cli
from secevents.server.cli import keys as keys_cli
from secevents.server.cli.serve import cmd_serve
from secevents.server.http.observability import structured_formatter
from secevents.server.settings import Settings

log = logging.getLogger("secevents.cli")


def _configure_logging(verbosity: int, log_format: str = "text") -> None:
    """Quiet by default: the command's own messages (``secevents.*`` at INFO) and warnings of
    the libraries it uses; ``-q`` only warnings and errors; ``-v`` everything, at DEBUG. With
    ``SECEVENTS_LOG_FORMAT=json`` every line is a JSON object (Alembic's and the embedded
    PostgreSQL's too), as the server's are."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(structured_formatter("json"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbosity > 0 else logging.WARNING, handlers=[handler])
    logging.getLogger("secevents").setLevel(
        logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    )


def _run_with_database(settings: Settings, action: Callable[[str], Any]) -> Any:
    """Run ``action(url)`` against the configured database (starting the embedded one if
    ``DATABASE_URL`` is unset; a running server's embedded database is shared)."""
    if settings.database.url:
        return action(settings.database.url)
    embedded = db.EmbeddedPostgres(settings.database.embedded_dir)
    url = embedded.start()
    try:
        return action(url)
    finally:
        embedded.stop()


async def _seed(url: str) -> None:
    from secevents.server.importers import seed

    async with db.connect(url) as conn:
        counts = await seed.load_once(conn)
    if counts is None:
        print("the sample dataset is already present: nothing written")
        return
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
    parser = argparse.ArgumentParser(
        prog="secevents",
        description=__doc__,
        epilog="Exit status: 0 done, 1 failed, 2 wrong usage (a bad option or value).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-v", "--verbose", action="store_true", help="log everything, at debug level")
    talk.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="serve the API (embedded PostgreSQL when DATABASE_URL is unset)"
    )
    serve.add_argument("--host", help="address to bind (default SECEVENTS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SECEVENTS_PORT or 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default SECEVENTS_WORKERS or 1)")
    serve.add_argument("--access-log", action="store_true", help="granian's access log as well")
    serve.set_defaults(handler=cmd_serve)

    database = commands.add_parser("db", help="database schema and sample data")
    db_commands = database.add_subparsers(dest="db_command", required=True)
    up = db_commands.add_parser("upgrade", help="run migrations up to a revision (default: head)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_commands.add_parser("downgrade", help="undo migrations down to a revision ('base' for all)")
    down.add_argument("revision")
    db_commands.add_parser("current", help="print the database's revision")
    db_commands.add_parser(
        "seed", help="load the sample dataset (the seed article's records) unless it is already present"
    )
    database.set_defaults(handler=cmd_db)
    keys_cli.add_parser(commands, _run_with_database)
    bulk_cli.add_parser(commands, _run_with_database)
    export_cli.add_parser(commands, _run_with_database)
    return parser


_TALK_OPTIONS = ("-q", "--quiet", "-v", "--verbose")


def _talk_options_first(argv: list[str]) -> list[str]:
    """``secevents serve -q`` as well as ``secevents -q serve``: the options that set how much
    the command says are the top-level parser's, wherever they are typed."""
    return [a for a in argv if a in _TALK_OPTIONS] + [a for a in argv if a not in _TALK_OPTIONS]


def _version() -> str:
    try:
        return metadata.version("secevents")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_talk_options_first(sys.argv[1:] if argv is None else list(argv)))
    verbosity = 1 if args.verbose else -1 if args.quiet else 0
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        _configure_logging(verbosity)
        return errors.report(errors.CliError(f"configuration: {exc}", errors.USAGE))
    _configure_logging(verbosity, settings.api.log_format)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        error = errors.describe(exc, settings.database.url)
        if error is None:
            raise  # a bug: the traceback is what its report needs
        return errors.report(error)


if __name__ == "__main__":
    sys.exit(main())
