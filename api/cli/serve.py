"""``secevents serve``: migrate, seed, then serve with granian — and stop when asked.

- SIGINT, SIGTERM and SIGHUP (a closed terminal) stop the server and the embedded PostgreSQL it
  started. granian treats SIGHUP as "reload the workers"; here it stops like the others (there
  is no reload: restart the command). A signal that arrives while the database is still starting
  or migrating stops it too.
- A busy port fails at once, before the database starts: granian binds with SO_REUSEPORT, which
  would let a second server share the port and split the requests, so the port is first bound
  here without it.
- One server per embedded data folder: ``serve.lock`` in the folder holds the pid and address
  of the server using it, under an exclusive ``flock``; a second server is refused with a message
  naming the first (commands like ``keys create`` still share the running database).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any

from secevents.server import db
from secevents.server.cli.errors import CliError
from secevents.server.http.observability import structured_formatter
from secevents.server.settings import Settings

log = logging.getLogger("secevents.cli")

LOCK_FILE = "serve.lock"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(Exception):
    """A stop signal arrived before granian took the signals over."""


def check_port(host: str, port: int) -> None:
    """Fail at once when ``host:port`` cannot be bound by a server of its own."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR (a port in TIME_WAIT is free) but not SO_REUSEPORT (a listener is not).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(
                    f"cannot serve on {host}:{port}: the port is in use by another program "
                    "(choose another with --port or SECEVENTS_PORT)"
                ) from None
            raise CliError(f"cannot serve on {host}:{port}: {exc.strerror}") from None


class DataFolderLock:
    """``serve.lock`` in the embedded data folder, held (``flock``) while a server uses it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._file: IO[str] | None = None

    def check(self) -> None:
        """Refuse now if a live server holds the lock (before starting anything)."""
        if not self.path.exists():
            return
        try:
            with self.path.open("r+") as existing:
                self._try_lock(existing)
                fcntl.flock(existing, fcntl.LOCK_UN)
        except FileNotFoundError:
            return

    def acquire(self, address: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            self._try_lock(handle)
        except CliError:
            handle.close()
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "address": address}) + "\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            self._file.close()  # closing releases the flock
            self._file = None

    def _try_lock(self, handle: IO[str]) -> None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except ValueError:
                holder = {}
            raise CliError(
                f"the data folder {self.path.parent} is in use by another secevents server "
                f"(pid {holder.get('pid', '?')}, {holder.get('address', 'address unknown')}); "
                "stop it first, or set SECEVENTS_DATA_DIR to another folder"
            ) from None


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Until granian installs its own handlers: a stop signal unwinds (so that the embedded
    PostgreSQL is stopped) instead of killing the process on the spot."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    workers = args.workers if args.workers is not None else settings.server.workers
    if not 0 < port < 65536:
        raise CliError(f"--port must be between 1 and 65535, not {port}", code=2)
    if workers < 1:
        raise CliError(f"--workers must be at least 1, not {workers}", code=2)
    check_port(host, port)
    address = f"http://{host}:{port}"
    lock = None if settings.database.url else DataFolderLock(settings.database.embedded_dir)
    embedded = None
    metrics_dir: str | None = None
    try:
        with stop_signals_raise():
            if lock is not None:
                lock.check()
                embedded = db.EmbeddedPostgres(settings.database.embedded_dir)
                url = embedded.start()
                lock.acquire(address)
                log.info(
                    "embedded PostgreSQL data folder: %s (set SECEVENTS_DATA_DIR to move it)",
                    embedded.data_dir,
                )
            else:
                url = settings.database.url or ""
            # Migrate and seed once here, then hand workers a ready database: N workers starting
            # at once must not race each other through the migrations.
            db.upgrade(url)
            if settings.database.seed_on_start:
                asyncio.run(_seed_if_empty(url))
        env = os.environ
        env["DATABASE_URL"] = url
        env["SECEVENTS_MIGRATE_ON_START"] = "false"
        env["SECEVENTS_SEED_ON_START"] = "false"
        # Workers must accept each other's cursors.
        env.setdefault("SECEVENTS_CURSOR_SECRET", secrets.token_hex(32))
        if workers > 1 and not env.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker counts in files of this folder; /metrics adds them all up, whichever
            # worker answers the scrape (secevents.server.http.observability).
            metrics_dir = tempfile.mkdtemp(prefix="secevents-metrics-")
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        log.info("serving on %s with %d worker(s)", address, workers)
        _granian(
            host,
            port,
            workers,
            access_log=args.access_log,
            quiet=args.quiet,
            log_format=settings.api.log_format,
        ).serve()
    except Stopped as stopped:
        log.info("stopped by %s before serving", stopped)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if embedded is not None:
            embedded.stop()
        if lock is not None:
            lock.release()
    return 0


def _granian(host: str, port: int, workers: int, *, access_log: bool, quiet: bool, log_format: str) -> Any:
    from granian.constants import Interfaces
    from granian.log import LOGGING_CONFIG, LogLevels
    from granian.server import Server

    # granian's own lines ("Starting granian", its access log) through the app's formatter: one
    # JSON object a line in JSON mode, like every other line the server writes.
    formatter = {"()": structured_formatter, "renderer": log_format}
    log_config = {**LOGGING_CONFIG, "formatters": {"generic": formatter, "access": formatter}}

    server = Server(
        "secevents.server.asgi:app_from_env",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        log_access=access_log,
        log_level=LogLevels.warning if quiet else LogLevels.info,
        log_dictconfig=log_config if log_format == "json" else None,
    )

    @server.on_startup
    def hangup_stops() -> None:
        # Runs right after granian installed its handlers (SIGHUP: reload): a closed terminal
        # stops the server like SIGINT and SIGTERM do.
        signal.signal(signal.SIGHUP, server.signal_handler_interrupt)

    return server


async def _seed_if_empty(url: str) -> None:
    from secevents.server.importers import seed

    async with db.connect(url) as conn:
        await seed.load_if_empty(conn)
