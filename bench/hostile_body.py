"""A hostile request body against a real server → bench/results/hostile_body.md.

    python bench/hostile_body.py [--url POSTGRES_URL] [--mib 250] [--server-path DIR] [--label L]

One granian worker serves the app over a database of its own (``--url``, default: an embedded
PostgreSQL in /tmp/secevents-bench-pg). A client sends one anonymous ``POST /v1/incidents`` with
a ``--mib`` MiB ``application/msgpack`` body (issue 18's reproducer: a MessagePack array, so a
server that decodes it builds hundreds of millions of objects) as fast as the loopback takes it,
while another client sends ``GET /v1/incidents?limit=1`` one after another. Measured: the
worker's peak RSS (``VmHWM``) before and after, the latency of the concurrent reads (p50, p99,
max) against the same reads without the body, how long the hostile request took to be answered
and with what status, and how many of its bytes the server read.

``--server-path`` serves the app from another checkout's link tree (``make typecheck-tree``
there builds ``.build/secevents``) to measure a version before a change with the same script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_export import drop_databases, fresh_database  # noqa: E402
from secevents.server import db  # noqa: E402
from secevents.server.importers import seed  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "hostile_body.md"
READ = "/v1/incidents?limit=1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker_hwm_kib(server_pid: int) -> int:
    """Peak RSS of the server's worker processes (granian runs the app in a child)."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    peak = 0
    for pid in [*children, str(server_pid)]:
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak


async def _reads(client: httpx.AsyncClient, stop: asyncio.Event) -> list[tuple[float, int]]:
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get(READ)
        latencies.append((time.perf_counter() - started, response.status_code))
    return latencies


def _hostile(port: int, mib: int) -> tuple[int, float, int]:
    """Send the body on a raw socket (stop when the server answers or closes); return the status,
    the seconds until the answer, and the bytes the server took."""
    size = mib * 1_048_576
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(120)
    header = (
        f"POST /v1/incidents HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode()
    started = time.perf_counter()
    sock.sendall(header + b"\xdd" + (size - 5).to_bytes(4, "big"))  # array32 of small ints
    chunk = b"\x01" * (1 << 20)
    sent = 5
    sock.setblocking(False)
    answer = b""
    while sent < size:
        try:
            sent += sock.send(chunk[: min(len(chunk), size - sent)])
        except BlockingIOError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            break
        with contextlib.suppress(BlockingIOError):
            answer += sock.recv(4096)
            if answer:
                break
    sock.setblocking(True)
    while b"\r\n" not in answer:
        more = sock.recv(4096)
        if not more:
            break
        answer += more
    elapsed = time.perf_counter() - started
    sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, elapsed, sent


def _summary(reads: list[tuple[float, int]]) -> str:
    ordered = sorted(latency for latency, _ in reads)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    failed = sum(1 for _, status in reads if status != 200)
    return (
        f"{len(ordered)} reads: p50 {statistics.median(ordered) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
        + (f", **{failed} not 200**" if failed else "")
    )


async def run(url: str, mib: int, server_path: str | None) -> dict[str, str]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECEVENTS_MIGRATE_ON_START": "false",
        "SECEVENTS_SEED_ON_START": "false",
        "SECEVENTS_RATE_LIMIT_WINDOW_SECONDS": "0",
        "SECEVENTS_LOG_FORMAT": "text",
    }
    if server_path:
        env["PYTHONPATH"] = server_path
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--workers", "1"]
    command += ["--host", "127.0.0.1", "--port", str(port), "secevents.server.asgi:app_from_env"]
    server = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health/live")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            quiet_stop = asyncio.Event()
            quiet = asyncio.create_task(_reads(client, quiet_stop))
            await asyncio.sleep(5)
            quiet_stop.set()
            baseline = await quiet
            rss_before = _worker_hwm_kib(server.pid)
            stop = asyncio.Event()
            during = asyncio.create_task(_reads(client, stop))
            status, elapsed, sent = await asyncio.to_thread(_hostile, port, mib)
            await asyncio.sleep(1)  # reads that waited behind it finish
            stop.set()
            concurrent = await during
            rss_after = _worker_hwm_kib(server.pid)
    finally:
        server.terminate()
        await server.wait()
    return {
        "status": str(status),
        "answered": f"{elapsed:.2f} s",
        "sent": f"{sent / 1_048_576:.1f} MiB of {mib} MiB",
        "rss": f"{rss_before / 1024:.0f} MB → {rss_after / 1024:.0f} MB",
        "baseline": _summary(baseline),
        "during": _summary(concurrent),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="maintenance URL of a PostgreSQL server (default: embedded)")
    parser.add_argument("--mib", type=int, default=250)
    parser.add_argument("--server-path", help="PYTHONPATH holding another version's `secevents`")
    parser.add_argument("--label", default="this version")
    args = parser.parse_args()
    embedded = None
    server_url = args.url
    if server_url is None:
        embedded = db.EmbeddedPostgres(Path("/tmp/secevents-bench-pg"))
        server_url = embedded.start()
    try:
        url = await fresh_database(server_url)
        async with db.connect(url) as conn:
            await seed.load_if_empty(conn)
        result = await run(url, args.mib, args.server_path)
        await drop_databases(server_url)
    finally:
        if embedded is not None:
            embedded.stop()
    row = (
        f"| {args.label} | {result['status']} | {result['answered']} | {result['sent']} | {result['rss']} "
        f"| {result['baseline']} | {result['during']} |"
    )
    print(row)
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    with RESULTS.open("a") as out:
        out.write(row + "\n")


HEADER = """# Hostile body benchmark

`python bench/hostile_body.py --label L [--server-path DIR]`: one anonymous `POST /v1/incidents`
with a 250 MiB `application/msgpack` body (a MessagePack array of small integers), sent as fast
as the loopback takes it, while another client reads `GET /v1/incidents?limit=1` one request
after another. One granian worker, the sample dataset, one 2-core machine shared with the
database and the clients (other jobs ran too: compare rows of one run, not absolute times).

| server | status | answered after | body bytes the server took | worker peak RSS | reads without the body | reads meanwhile |
|---|---:|---:|---:|---:|---|---|
"""


if __name__ == "__main__":
    asyncio.run(main())
