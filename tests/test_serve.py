"""``secevents serve`` stops when asked and refuses to share: SIGHUP (a closed terminal), SIGINT
and SIGTERM stop the server and the embedded PostgreSQL it started; a busy port fails at once;
a second server on the same embedded data folder is refused with a message naming the first.
Real ``secevents serve`` processes over embedded PostgreSQL data folders of their own."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.support import scratch_folder, until

pytestmark = pytest.mark.own_servers  # the same with any SECEVENTS_TEST_DATABASE_URL

SECEVENTS = str(Path(sys.executable).parent / "secevents")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECEVENTS_", "DATABASE_"))}
    env["SECEVENTS_DATA_DIR"] = str(data_dir)
    return env


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@asynccontextmanager
async def serving(data_dir: Path, port: int, *extra: str) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        SECEVENTS,
        "serve",
        "--port",
        str(port),
        *extra,
        env=serve_env(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )

    async def ready() -> bool:
        assert process.returncode is None, "the server exited"
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"http://127.0.0.1:{port}/health/ready")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await until(ready, interval=0.1)
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.communicate()


async def run(data_dir: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        SECEVENTS,
        *args,
        env=serve_env(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode()


@pytest.fixture
def scratch() -> Iterator[Path]:
    with scratch_folder("secevents-serve-test-") as folder:
        yield folder


async def test_each_stop_signal_stops_the_server_and_its_database(scratch: Path) -> None:
    data_dir = scratch / "pgdata"
    for stop in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        port = free_port()
        async with serving(data_dir, port) as server:
            database = postmaster_pid(data_dir)
            assert alive(database)
            assert (data_dir / "serve.lock").read_text().count(str(server.pid)) == 1
            server.send_signal(stop)
            output, _ = await server.communicate()
        assert server.returncode == 0, (stop, output.decode())
        # Stopped, and its database with it (granian would have reloaded on SIGHUP).
        await until(lambda database=database: not alive(database))  # type: ignore[misc]
        assert not (data_dir / "postmaster.pid").exists()
        assert not (data_dir / "serve.lock").exists()
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as client:
                await client.get(f"http://127.0.0.1:{port}/health/live")


async def test_a_second_server_is_refused_by_port_and_by_data_folder(scratch: Path) -> None:
    first_dir = scratch / "first"
    port = free_port()
    async with serving(first_dir, port, "-q") as first:
        # Same port, another folder: refused at once, before any database starts.
        other_dir = scratch / "other"
        code, err = await run(other_dir, "serve", "--port", str(port))
        assert code == 1
        assert err.strip().splitlines() == [
            f"secevents: cannot serve on 127.0.0.1:{port}: the port is in use by another program "
            "(choose another with --port or SECEVENTS_PORT)"
        ]
        assert not other_dir.exists()

        # Same folder, another port: refused, naming the running server.
        code, err = await run(first_dir, "serve", "--port", str(free_port()))
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert f"in use by another secevents server (pid {first.pid}, http://127.0.0.1:{port})" in lines[0]

        # The first one is untouched, its database too; commands still share that database.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/health/ready")).status_code == 200
        code, err = await run(first_dir, "db", "current")
        assert code == 0 and err == ""
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/health/ready")).status_code == 200
        first.send_signal(signal.SIGTERM)
        output, _ = await first.communicate()
    assert first.returncode == 0
    # -q: no INFO lines from the command or from granian (the app's access log stays: it is
    # the server's record of requests, not the command's chatter).
    lines = output.decode().splitlines()
    assert not [line for line in lines if line.startswith("[INFO]") or " INFO " in line], lines


async def test_a_port_taken_with_so_reuseport_is_still_busy(tmp_path: Path) -> None:
    """granian binds with SO_REUSEPORT, which would let a second granian share the port."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = await run(tmp_path / "pgdata", "serve", "--port", str(port))
    assert code == 1 and "the port is in use" in err and "Traceback" not in err
    assert not (tmp_path / "pgdata").exists()
