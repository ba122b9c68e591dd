"""Read replicas: a pool per streaming replica, their health, and which pool serves a read.

Reads go to a replica in rotation; writes always to the primary (the routing itself is in
:mod:`secevents.server.http.dependencies`). A background task measures every replica's replay
position against the primary's WAL position: a replica that is down or lags by more than
``SECEVENTS_REPLICA_MAX_LAG_BYTES`` leaves the rotation and comes back once it has caught up.

Read-your-writes: a write answers with the primary's WAL position after its commit (the
``Secevents-Read-After`` header, :func:`wal_position`); a read that sends it back is served by
a replica only once that replica has replayed past it (:meth:`Replicas.acquire_for_read` waits
up to ``SECEVENTS_READ_AFTER_WAIT`` seconds), otherwise by the primary.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import asyncpg

from secevents.server import db
from secevents.server.settings import DatabaseSettings

log = logging.getLogger("secevents.replicas")

READ_AFTER_HEADER = "Secevents-Read-After"
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
# The read-after wait re-checks the replica's replay position this often.
_POLL_SECONDS = 0.01

# pg_current_wal_insert_lsn(), not pg_current_wal_lsn(): the insert position is past the end of
# every commit record already inserted, whatever `synchronous_commit` says; the write position
# lags it when commits are asynchronous, and a token taken from it could then be *before* the
# write's own commit. The cost: a token may also cover WAL of other transactions still in
# flight, which a replica receives moments later anyway.
WAL_POSITION = "SELECT pg_current_wal_insert_lsn()::text"
_REPLAY_POSITION = "SELECT pg_last_wal_replay_lsn()::text"


def parse_lsn(text: str) -> int:
    """A ``pg_lsn`` (``16/B374D848``) as a number; ValueError when it is not one."""
    match = _LSN.match(text.strip())
    if match is None:
        raise ValueError(f"not a WAL position: {text!r}")
    return (int(match[1], 16) << 32) | int(match[2], 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


async def wal_position(conn: asyncpg.Connection) -> str:
    """The primary's WAL position now (after the caller's commit): the read-after token."""
    value: str = await conn.fetchval(WAL_POSITION)
    return value


def describe(url: str) -> str:
    """host:port of a URL, for logs, health and metrics labels (never the password)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host and "host=" in parts.query:
        host = parts.query.split("host=", 1)[1].split("&", 1)[0]
    return f"{host}:{parts.port or 5432}"


@dataclass
class Replica:
    url: str
    name: str
    pool: asyncpg.Pool | None = None
    state: str = "down"
    """``up`` (in rotation), ``lagging`` or ``down`` (out of it)."""
    replay_lsn: int | None = None
    lag_bytes: int | None = None
    checked_at: float = 0.0


@dataclass
class Replicas:
    """The replica pools of one process and their state."""

    primary: asyncpg.Pool
    settings: DatabaseSettings
    members: list[Replica] = field(default_factory=list)
    _turn: itertools.count[int] = field(default_factory=itertools.count)
    _task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, primary: asyncpg.Pool, settings: DatabaseSettings) -> Replicas:
        replicas = cls(primary, settings, [Replica(url, describe(url)) for url in settings.replica_urls])
        await replicas.check()
        if replicas.members:
            replicas._task = asyncio.create_task(replicas._run(), name="secevents-replica-health")
        return replicas

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for member in self.members:
            if member.pool is not None:
                await member.pool.close()

    def in_rotation(self) -> list[Replica]:
        return [m for m in self.members if m.state == "up" and m.pool is not None]

    # --- health ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.replica_check_interval)
            try:
                await self.check()
            except Exception:  # a health check must never end the task
                log.exception("replica health check failed")

    async def check(self) -> None:
        """Measure each replica's lag behind the primary and put it in or out of rotation."""
        if not self.members:
            return
        timeout = self.settings.replica_check_timeout
        try:
            primary_lsn = parse_lsn(await self.primary.fetchval(WAL_POSITION, timeout=timeout))
        except Exception as exc:
            # Without the primary's position no lag can be measured: keep the states as they are.
            log.warning("replica check: the primary's WAL position is unreadable: %r", exc)
            return
        await asyncio.gather(*(self._check_one(m, primary_lsn) for m in self.members))

    async def _check_one(self, member: Replica, primary_lsn: int) -> None:
        timeout = self.settings.replica_check_timeout
        try:
            if member.pool is None:
                member.pool = await asyncio.wait_for(
                    db.create_pool(member.url, self.settings, min_size=0), timeout
                )
            pool: asyncpg.Pool = member.pool
            replay = await pool.fetchval(_REPLAY_POSITION, timeout=timeout)
            if replay is None:
                raise RuntimeError("not a standby (pg_last_wal_replay_lsn() is NULL)")
        except Exception as exc:
            self._set(member, "down", repr(exc))
            member.lag_bytes = None
            return
        member.replay_lsn = parse_lsn(replay)
        member.lag_bytes = max(0, primary_lsn - member.replay_lsn)
        member.checked_at = time.monotonic()
        lagging = member.lag_bytes > self.settings.replica_max_lag_bytes
        self._set(member, "lagging" if lagging else "up", f"{member.lag_bytes} bytes behind")

    def _set(self, member: Replica, state: str, why: str) -> None:
        if member.state != state:
            log.warning("replica %s: %s -> %s (%s)", member.name, member.state, state, why)
        member.state = state

    def mark_down(self, member: Replica, exc: BaseException) -> None:
        """A request met a dead replica connection: out of rotation until the next check."""
        self._set(member, "down", repr(exc))

    # --- routing --------------------------------------------------------------------------

    async def acquire_for_read(
        self, read_after: int | None, acquire_timeout: float
    ) -> tuple[asyncpg.Pool, asyncpg.Connection, Replica | None]:
        """A connection for a read: from a replica in rotation that has replayed past
        ``read_after`` (waiting for it up to the configured bound), else from the primary.

        Every replica connection is probed (its replay position) before it is handed out, so a
        replica that died since the last check falls back to the primary here, not as an error
        in the middle of the handler."""
        candidates = self.in_rotation()
        if candidates:
            start = next(self._turn)
            for i in range(len(candidates)):
                member = candidates[(start + i) % len(candidates)]
                got = await self._try_replica(member, read_after, acquire_timeout)
                if got is not None:
                    return pool_of(member), got, member
        conn = await self.primary.acquire(timeout=acquire_timeout)
        return self.primary, conn, None

    async def _try_replica(
        self, member: Replica, read_after: int | None, acquire_timeout: float
    ) -> asyncpg.Connection | None:
        pool = pool_of(member)
        try:
            conn = await pool.acquire(timeout=acquire_timeout)
        except Exception as exc:
            if not isinstance(exc, TimeoutError):
                self.mark_down(member, exc)
            return None
        try:
            deadline = time.monotonic() + self.settings.read_after_wait
            while True:
                replay = await conn.fetchval(_REPLAY_POSITION, timeout=self.settings.replica_check_timeout)
                if replay is None:
                    raise RuntimeError("not a standby")
                if read_after is None or parse_lsn(replay) >= read_after:
                    return conn
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(_POLL_SECONDS)
        except Exception as exc:
            self.mark_down(member, exc)
        await release(pool, conn)
        return None


def pool_of(member: Replica) -> asyncpg.Pool:
    assert member.pool is not None, "only replicas in rotation (with a pool) serve reads"
    return member.pool


async def release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """Give the connection back. When the database died under it, asyncpg cannot reset it,
    terminates it (the pool opens a new one on a later acquire) and raises: that error must
    not replace the request's own outcome."""
    try:
        await pool.release(conn)
    except Exception as exc:
        log.warning("dropped a pooled connection that could not be reset: %r", exc)
