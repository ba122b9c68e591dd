"""Webhook delivery latency, commit → receiver → the "Webhooks" section of bench/results/push.md.

    python -m bench.webhooks [--changes 300] [--gap 0.02]

A server process (uvicorn, one worker, as ``secevents serve`` runs it) delivers to a receiver
on loopback (``http.server`` in a thread) while incidents are written through the API one after
another, ``--gap`` seconds apart. Latency is the receiver's arrival time minus the API's answer
to the write, and minus the change's ``committed_at`` (one machine, one clock), once per poll
interval of the worker. The section of push.md between its markers is replaced; the rest of the
file (the SSE numbers) is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secevents.server import db  # noqa: E402
from secevents.server.http import auth  # noqa: E402
from secevents.server.importers import seed  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "push.md"
EMBEDDED_DIR = Path("/tmp/secevents-bench-pg")
START, END = "<!-- webhooks:start -->", "<!-- webhooks:end -->"


class Arrivals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        with self.lock:
            return len(self.items)


def start_receiver(arrivals: Arrivals) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            arrived = time.time()
            with arrivals.lock:
                arrivals.items.append((arrived, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


async def fresh_database(server: str) -> str:
    name = f"se_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = db.url_with_database(server, name)
    await asyncio.to_thread(db.upgrade, url)
    async with db.connect(url) as conn:
        await seed.load_if_empty(conn)
    return url


async def drop_database(server: str, url: str) -> None:
    name = url.partition("?")[0].rsplit("/", 1)[1]
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def start_server(url: str, poll_interval: float) -> tuple[asyncio.subprocess.Process, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECEVENTS_MIGRATE_ON_START": "false",
        "SECEVENTS_SEED_ON_START": "false",
        "SECEVENTS_RATE_LIMIT_WINDOW_SECONDS": "0",
        "SECEVENTS_LOG_FORMAT": "text",
        "SECEVENTS_WEBHOOK_ALLOW_PRIVATE": "1",
        "SECEVENTS_WEBHOOK_POLL_INTERVAL": str(poll_interval),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "uvicorn", "--factory", "secevents.server.asgi:app_from_env"),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base) as probe:
        for _ in range(400):
            try:
                if (await probe.get("/health/live")).status_code == 200:
                    return process, base
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    process.terminate()
    raise RuntimeError("the server did not start")


async def incident_body(conn: asyncpg.Connection, n: int) -> dict[str, Any]:
    source = await conn.fetchrow("SELECT id::text, text FROM sources WHERE text IS NOT NULL LIMIT 1")
    org = await conn.fetchval(
        "SELECT id::text FROM organisations WHERE deleted_at IS NULL ORDER BY id LIMIT 1"
    )
    return {
        "title": f"Latency probe {n}",
        "type": "battle",
        "occurred": {"start": "2023-12-12", "end": "2023-12-12", "precision": "day"},
        "location": {"country": "PK", "precision": "country"},
        "participants": [{"organisation_id": org, "role": "perpetrator"}],
        "citations": [{"source_id": source["id"], "quote": source["text"][100:160]}],
    }


async def measure(
    server: str, changes: int, gap: float, poll_interval: float
) -> tuple[list[float], list[float]]:
    """Per change: arrival − the API's answer to the write (the commit happened just before it),
    and arrival − ``committed_at`` (the writing transaction's start: an upper bound)."""
    url = await fresh_database(server)
    answered: dict[str, float] = {}
    arrivals = Arrivals()
    receiver, hook = start_receiver(arrivals)
    process, base = await start_server(url, poll_interval)
    try:
        async with db.connect(url) as conn:
            write = (await auth.create_key(conn, name="bench-write", scopes=["write"])).key
            admin = (await auth.create_key(conn, name="bench-admin", scopes=["admin"])).key
            body = await incident_body(conn, 0)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            created = await client.post(
                "/v1/webhooks",
                json={"url": hook, "types": ["incident"]},
                headers={"Authorization": f"Bearer {admin}"},
            )
            created.raise_for_status()
            for n in range(changes):
                body["title"] = f"Latency probe {n}"
                response = await client.post(
                    "/v1/incidents", json=body, headers={"Authorization": f"Bearer {write}"}
                )
                response.raise_for_status()
                answered[response.json()["id"]] = time.time()
                await asyncio.sleep(gap)
        for _ in range(12_000):  # ten minutes at most
            if len(arrivals) >= changes:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"{len(arrivals)} of {changes} deliveries arrived")
    finally:
        process.terminate()
        await process.wait()
        receiver.shutdown()
        await drop_database(server, url)
    after_answer, after_start = [], []
    for arrived, raw in arrivals.items:
        change = json.loads(raw)["data"]
        after_answer.append((arrived - answered[change["id"]]) * 1000)
        after_start.append((arrived - dt.datetime.fromisoformat(change["committed_at"]).timestamp()) * 1000)
    return after_answer, after_start


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def section(rows: list[tuple[float, tuple[list[float], list[float]]]], changes: int, gap: float) -> str:
    lines = [
        START,
        "## Webhooks: delivery latency, commit → receiver",
        "",
        f"`python -m bench.webhooks --changes {changes} --gap {gap}` on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. One uvicorn worker delivering to an "
        f"`http.server` receiver on loopback; {changes} incidents written through the API one by "
        f"one, {gap * 1000:g} ms apart. The commit lies between the writing transaction's start "
        "(`committed_at`) and the API's answer to the write, so latency is given from both: "
        "arrival at the receiver − the answer (a lower bound; negative when the delivery beat the "
        "answer) and − `committed_at` (an upper bound, including the write itself). One machine, "
        "one clock.",
        "",
        "| poll interval | from | p50 ms | p99 ms | max ms | mean ms |",
        "|---|---|---|---|---|---|",
    ]
    for poll, (after_answer, after_start) in rows:
        for label, values in (("the write's answer", after_answer), ("`committed_at`", after_start)):
            lines.append(
                f"| {poll:g} s | {label} | {percentile(values, 50):.1f} | {percentile(values, 99):.1f} | "
                f"{max(values):.1f} | {statistics.fmean(values):.1f} |"
            )
    lines += [
        "",
        "The change listener wakes the worker at every commit, so the poll interval "
        "(`SECEVENTS_WEBHOOK_POLL_INTERVAL`, now only for retries and lost notifications) hardly "
        "matters; what remains is the notification, the claim, the feed read, signing, the HTTP "
        "round trip and the state update, on a 2-core machine shared with PostgreSQL, the writer "
        "and the receiver.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    existing = RESULTS.read_text() if RESULTS.exists() else "# Push: change feed stream and webhooks\n\n"
    if START in existing and END in existing:
        before, _, rest = existing.partition(START)
        _, _, after = rest.partition(END)
        existing = before + text.rstrip("\n") + after
    else:
        existing = existing.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(existing)


async def run(args: argparse.Namespace) -> str:
    server = os.environ.get("DATABASE_URL")
    embedded = None
    if not server:
        embedded = db.EmbeddedPostgres(EMBEDDED_DIR)
        server = embedded.start()
    try:
        rows = []
        for poll in args.poll:
            rows.append((poll, await measure(server, args.changes, args.gap, poll)))
    finally:
        if embedded is not None:
            embedded.stop()
    return section(rows, args.changes, args.gap)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--gap", type=float, default=0.02)
    parser.add_argument("--poll", type=float, nargs="+", default=[1.0, 0.1])
    args = parser.parse_args(argv)
    text = asyncio.run(run(args))
    write_section(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
