"""Event-stream benchmark → the "Event stream" section of bench/results/push.md.

    python bench/push.py [--url POSTGRES_URL] [--streams 1000] [--commits 200]

- Idle streams: N Server-Sent Event streams (``/v1/changes/stream``) held open on one worker
  (``secevents serve --workers 1``, granian): the worker's memory (RSS) and open file descriptors
  before and after, and the server's database connections — its pool and its one ``LISTEN``
  connection; an idle stream holds none.
- Delivery latency: a writer commits one revision every 20 ms; from the moment its commit
  returns to the moment the event arrives on each of 10 probe streams: p50, p99, max. Once with
  the probes alone, once with the N idle streams open too (those subscribe to another record
  type and stand at the same cursor: they wait as one group, whose one reader every commit wakes
  to read the feed; the streams themselves are not woken and send nothing).

Each run uses a database of its own on the server (``--url``, default an embedded PostgreSQL in
/tmp/secevents-bench-pg). The client runs in this process, on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_export import drop_databases, fresh_database  # noqa: E402
from secevents.server import db  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "push.md"
START, END = "<!-- stream:start -->", "<!-- stream:end -->"
PROBES = 10
COMMIT_INTERVAL = 0.02
INSERT = (
    "INSERT INTO revisions (record_type, record_id, version, operation, data, actor)"
    " VALUES ('source', $1, 1, 'create', '{\"bench\": true}', 'bench') RETURNING seq"
)
CONNECTIONS = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE state <> 'idle' AND application_name <> 'secevents-listener') AS busy,
       count(*) FILTER (WHERE application_name = 'secevents-listener') AS listening
  FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.asynccontextmanager
async def server(url: str) -> AsyncIterator[tuple[str, int]]:
    """``secevents serve`` with one worker; yields its base URL and the worker's pid."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECEVENTS_SEED_ON_START": "false",
        "SECEVENTS_RATE_LIMIT_WINDOW_SECONDS": "0",
        "SECEVENTS_LOG_FORMAT": "text",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "secevents.server.cli.main",
        "serve",
        "--workers",
        "1",
        "--port",
        str(port),
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as probe:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await probe.get("/health/live")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        workers = children(process.pid)
        yield base, workers[0] if workers else process.pid
    finally:
        process.terminate()
        await process.wait()


async def idle_stream(
    client: httpx.AsyncClient, cursor: str, opened: asyncio.Event, count: list[int]
) -> None:
    async with client.stream(
        "GET", "/v1/changes/stream", params={"after": cursor, "types": "statement"}
    ) as r:
        assert r.status_code == 200, r.status_code
        count[0] += 1
        if count[0] == count[1]:
            opened.set()
        async for _ in r.aiter_lines():
            pass


class Probe:
    """A stream that notes when each change arrives."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrivals: dict[int, float] = {}
        self.ready = asyncio.Event()
        self.complete = asyncio.Event()

    async def read(self, client: httpx.AsyncClient, cursor: str) -> None:
        params = {"after": cursor, "types": "source"}
        async with client.stream("GET", "/v1/changes/stream", params=params) as response:
            self.ready.set()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    self.arrivals[json.loads(line[6:])["seq"]] = time.perf_counter()
                    if len(self.arrivals) == self.expected:
                        self.complete.set()


async def latency(base: str, url: str, cursor: str, commits: int) -> list[float]:
    """Commit-to-arrival delays (ms) over every probe and every commit."""
    probes = [Probe(commits) for _ in range(PROBES)]
    async with httpx.AsyncClient(base_url=base, timeout=None) as client:
        tasks = [asyncio.create_task(probe.read(client, cursor)) for probe in probes]
        await asyncio.gather(*(probe.ready.wait() for probe in probes))
        committed: dict[int, float] = {}
        writer = await asyncpg.connect(url)
        try:
            for _ in range(commits):
                seq = await writer.fetchval(INSERT, uuid.uuid4())
                committed[seq] = time.perf_counter()
                await asyncio.sleep(COMMIT_INTERVAL)
        finally:
            await writer.close()
        await asyncio.wait_for(asyncio.gather(*(probe.complete.wait() for probe in probes)), 120)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return [(probe.arrivals[seq] - t) * 1000 for probe in probes for seq, t in committed.items()]


async def caught_up_cursor(base: str) -> str:
    async with httpx.AsyncClient(base_url=base) as client:
        after = None
        while True:
            page = (
                await client.get(
                    "/v1/changes", params={"limit": "1000"} | ({"after": after} if after else {})
                )
            ).json()
            after = page["next_cursor"]
            if not page["has_more"]:
                return str(after)


def summary(label: str, delays: list[float]) -> str:
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    return f"| {label} | {len(delays):,} | {statistics.median(delays):.1f} ms | {p99:.1f} ms | {delays[-1]:.1f} ms |"


async def run(server_url: str, streams: int, commits: int) -> list[str]:
    url = await fresh_database(server_url)
    async with server(url) as (base, worker):
        cursor = await caught_up_cursor(base)
        async with db.connect(url) as conn:
            before = (rss_mb(worker), open_fds(worker), dict(await conn.fetchrow(CONNECTIONS)))
            alone = await latency(base, url, cursor, commits)
            cursor = await caught_up_cursor(base)
            opened = asyncio.Event()
            count = [0, streams]
            limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=base, timeout=None, limits=limits) as client:
                tasks = [
                    asyncio.create_task(idle_stream(client, cursor, opened, count)) for _ in range(streams)
                ]
                started = time.perf_counter()
                await opened.wait()
                open_time = time.perf_counter() - started
                await asyncio.sleep(2)  # let the worker settle
                after = (rss_mb(worker), open_fds(worker), dict(await conn.fetchrow(CONNECTIONS)))
                loaded = await latency(base, url, cursor, commits)
                held = dict(await conn.fetchrow(CONNECTIONS))
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    return [
        "## Idle streams on one worker",
        "",
        f"{streams:,} streams opened in {open_time:.1f} s.",
        "",
        "| | worker RSS | worker file descriptors | server's database connections | busy | LISTEN |",
        "|---|---:|---:|---:|---:|---:|",
        f"| before | {before[0]:.0f} MB | {before[1]} | {before[2]['total']} | {before[2]['busy']} | {before[2]['listening']} |",
        f"| {streams:,} idle streams | {after[0]:.0f} MB | {after[1]} | {after[2]['total']} | {after[2]['busy']} | {after[2]['listening']} |",
        f"| same, after {commits} commits | | | {held['total']} | {held['busy']} | {held['listening']} |",
        "",
        f"Per stream: {(after[0] - before[0]) * 1024 / streams:.0f} kB, "
        f"{(after[1] - before[1]) / streams:.2f} file descriptors, no database connection.",
        "",
        f"## Delivery latency: commit returned → event received ({PROBES} probe streams, {commits} commits, one every {COMMIT_INTERVAL * 1000:.0f} ms)",
        "",
        "| streams open | deliveries | p50 | p99 | max |",
        "|---|---:|---:|---:|---:|",
        summary(f"{PROBES} probes", alone),
        summary(f"{PROBES} probes + {streams:,} idle", loaded),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="maintenance URL of a PostgreSQL server (default: embedded)")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=200)
    args = parser.parse_args()
    embedded = None
    server_url = args.url
    if server_url is None:
        embedded = db.EmbeddedPostgres(Path("/tmp/secevents-bench-pg"))
        server_url = await asyncio.to_thread(embedded.start)
    try:
        rows = await run(server_url, args.streams, args.commits)
    finally:
        await drop_databases(server_url)
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
    section = "\n".join(
        [
            START,
            "## Event stream (`/v1/changes/stream`)",
            "",
            f"`python bench/push.py --streams {args.streams} --commits {args.commits}` — "
            f"{time.strftime('%Y-%m-%d')}, PostgreSQL {'embedded' if args.url is None else 'at --url'}; "
            "server, database and clients on one shared 2-core machine (absolute times are context only).",
            "",
            *(row.replace("## ", "### ", 1) if row.startswith("## ") else row for row in rows),
            END,
        ]
    )
    write_section(section)
    print(section)


def write_section(text: str) -> None:
    """Replace this benchmark's section of push.md (bench/webhooks.py writes another)."""
    existing = RESULTS.read_text() if RESULTS.exists() else "# Push: change feed stream and webhooks\n\n"
    if START in existing and END in existing:
        before, _, rest = existing.partition(START)
        _, _, after = rest.partition(END)
        existing = before + text + after
    else:
        existing = existing.rstrip("\n") + "\n\n" + text + "\n"
    RESULTS.write_text(existing)


if __name__ == "__main__":
    asyncio.run(main())
