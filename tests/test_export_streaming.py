"""Exports that cannot be held hostage (issue 18, item 3): a client that stops reading is cut
off after the stall timeout and frees its pooled connection; exports are capped per client (429)
and per worker (503); a complete export says so in its last line, a cut one does not."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from secevents.server.app import create_app
from secevents.server.importers import ucdp
from secevents.server.settings import Settings
from tests.conftest import make_settings
from tests.support import assert_problem, until, wait_until
from tests.test_lifecycle import free_port, running, server_env
from tests.writing import Keys, make_keys

PAKISTAN = Path(__file__).resolve().parent.parent / "data" / "ucdp" / "ged_pakistan.csv"
EXPORT = "/v1/exports/incidents"


@pytest.fixture
async def with_pakistan(conn: asyncpg.Connection) -> asyncpg.Connection:
    """6,416 more incidents: an export of megabytes, more than any buffer on the way."""
    await ucdp.import_file(conn, PAKISTAN)
    return conn


async def in_transaction(conn: asyncpg.Connection) -> int:
    """Connections of this database holding a transaction open (an export's snapshot)."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
    )
    return count


# --- what a complete export looks like -------------------------------------------------------


async def test_ndjson_ends_with_its_count(client: httpx.AsyncClient) -> None:
    lines = (await client.get(EXPORT)).content.decode().splitlines()
    *records, last = lines
    assert records and all(json.loads(line)["type"] == "incident" for line in records)
    assert json.loads(last) == {"type": "export_complete", "count": len(records)}


async def test_csv_ends_with_its_count(client: httpx.AsyncClient) -> None:
    text = (await client.get(EXPORT, params={"format": "csv"})).text
    *body, last = text.splitlines()
    rows = list(csv.reader(io.StringIO("\n".join(body))))
    assert last == f"# export_complete: {len(rows) - 1} records"
    assert not any(row[0].startswith("#") for row in rows[1:])


async def test_an_import_checks_the_count_of_each_export(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    keys = await make_keys(conn)
    exported = (await client.get(EXPORT)).content
    *records, trailer = exported.splitlines(keepends=True)
    # Records missing before the trailer: the file is incomplete.
    cut = b"".join(records[:-1]) + trailer
    response = await client.post(
        "/v1/imports",
        content=cut,
        headers={"Content-Type": "application/x-ndjson", **Keys.header(keys.admin)},
    )
    problem = assert_problem(response, 422, "import_rejected")
    assert problem["errors"][0]["field"] == f"line {len(records)}: count"
    assert "incomplete" in problem["errors"][0]["message"]


# --- stalled clients, caps: the app driven at the ASGI level ---------------------------------


@dataclass
class RawExport:
    """One export request whose client reads the headers and first chunk, then stops reading
    (its ``send`` never returns, as when the socket's buffers are full) until it disconnects."""

    app: Litestar
    client_ip: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    first_chunk: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> RawExport:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": EXPORT, "raw_path": EXPORT.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"t"), *self.headers],
            "client": (self.client_ip, 50000), "server": ("t", 80), "state": {},
        }  # fmt: skip
        self.task = asyncio.create_task(self.app(scope, self.receive, self.send))  # type: ignore[arg-type]
        return self

    async def receive(self) -> dict[str, Any]:
        if not self.messages:
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            self.first_chunk.set()
            await asyncio.Event().wait()  # the client reads no more

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    async def answered(self) -> int:
        await until(lambda: self.messages or (self.task is not None and self.task.done()))
        return self.status

    async def disconnect(self) -> None:
        self.disconnected.set()
        assert self.task is not None
        with contextlib.suppress(Exception):
            await self.task


def export_settings(database_url: str, **api: object) -> Settings:
    limits: dict[str, object] = {
        "export_buffer_bytes": 65536,
        "max_exports": 2,
        "max_exports_per_client": 1,
        "export_stall_timeout": 600.0,
    }
    return make_settings(database_url, **{**limits, **api})


async def test_exports_are_capped_per_client_and_per_worker(
    database_url: str, with_pakistan: asyncpg.Connection
) -> None:
    app = create_app(export_settings(database_url))
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as other:
            first = RawExport(app, "10.0.0.1").start()
            await first.first_chunk.wait()
            assert first.status == 200
            # The same client again: its cap (429); another client: the last slot.
            again = RawExport(app, "10.0.0.1").start()
            assert await again.answered() == 429
            second = RawExport(app, "10.0.0.2").start()
            await second.first_chunk.wait()
            # A third client: the worker's cap (503). Both with Retry-After.
            busy = await other.get(EXPORT)
            assert_problem(busy, 503, "service_unavailable")
            assert int(busy.headers["retry-after"]) > 0
            limited = dict(again.messages[0]["headers"])
            assert int(limited[b"retry-after"]) > 0
            # Exports hold at most two pooled connections: everything else is served.
            assert (await other.get("/v1/incidents", params={"limit": 1})).status_code == 200
            # A client that goes away frees its slot and its connection.
            await first.disconnect()
            await second.disconnect()
            await wait_until(in_transaction, with_pakistan, 0)
            complete = await other.get(EXPORT)
            assert complete.status_code == 200
            assert json.loads(complete.content.splitlines()[-1])["type"] == "export_complete"


async def test_a_stalled_export_is_cut_off_and_frees_its_connection(
    database_url: str, with_pakistan: asyncpg.Connection
) -> None:
    app = create_app(export_settings(database_url, export_stall_timeout=0.5))
    async with app.lifespan():
        stalled = RawExport(app, "10.0.0.3").start()
        await stalled.first_chunk.wait()
        assert stalled.task is not None
        with pytest.raises(Exception):  # noqa: B017, PT011  # cut off: the server aborts the response
            await stalled.task
        # No terminating message, no trailer; the snapshot's transaction is gone, the slot free.
        bodies = [m for m in stalled.messages if m["type"] == "http.response.body"]
        assert all(m.get("more_body") for m in bodies)
        assert b"export_complete" not in b"".join(m["body"] for m in bodies)
        assert await in_transaction(with_pakistan) == 0
        again = RawExport(app, "10.0.0.3").start()
        await again.first_chunk.wait()
        assert again.status == 200
        await again.disconnect()


# --- a real server and real sockets ----------------------------------------------------------


def _stalled_socket(port: int) -> socket.socket:
    """A connection that asks for an export, then reads nothing: a tiny receive buffer, so the
    server's writes back up quickly."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {EXPORT} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    return sock


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(60)
    received = bytearray()
    while chunk := sock.recv(1 << 16):
        received += chunk
    return bytes(received)


async def test_ten_stalled_readers_do_not_take_the_pool(
    database_url: str, with_pakistan: asyncpg.Connection
) -> None:
    """The reproducer: ten clients open exports and stop reading. Two of them run (the per-client
    cap; all come from one address), the rest are refused at once; every other request is
    served; the two give their connections back (cut off after the stall timeout, unless the
    HTTP server buffered all of it), and a cut one lacks its last line and last chunk."""
    port = free_port()
    command = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "tests.support:app_from_env",
    ]  # fmt: skip
    env = server_env(
        database_url,
        SECEVENTS_EXPORT_STALL_TIMEOUT="3",
        SECEVENTS_EXPORT_BUFFER_BYTES="65536",
        SECEVENTS_POOL_MAX_SIZE="4",
        SECEVENTS_MAX_EXPORTS="3",
    )
    async with running(command, env, port):
        sockets = [_stalled_socket(port) for _ in range(10)]
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                for _ in range(20):  # the pool (4) is never all held by exports
                    assert (await client.get("/v1/incidents", params={"limit": 1})).status_code == 200
                # Cut off after the stall timeout: their snapshots are released.
                await wait_until(in_transaction, with_pakistan, 0)
                replies = await asyncio.gather(*(asyncio.to_thread(_read_all, s) for s in sockets))
        finally:
            for s in sockets:
                s.close()
    count = await with_pakistan.fetchval("SELECT count(*) FROM incidents WHERE deleted_at IS NULL")
    statuses = sorted(reply.split(b" ", 2)[1] for reply in replies)
    assert statuses == [b"200"] * 2 + [b"429"] * 8
    for reply in replies:
        if reply.split(b" ", 2)[1] == b"200":
            # Cut off (what the HTTP server had not buffered yet was never sent) or, when its
            # buffers held the rest, complete: either way a reader can tell which.
            complete = reply.endswith(b'{"type":"export_complete","count":%d}\n\r\n0\r\n\r\n' % count)
            assert complete == (b"export_complete" in reply) == reply.endswith(b"\r\n0\r\n\r\n")
