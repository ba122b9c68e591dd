"""Frozen-database benchmark → bench/results/freeze.md.

    python -m bench.freeze [--request-timeout 5] [--freeze 20] [--clients 8]

Serves the API as in production (``secevents serve``, one worker, in a process of its own, over
an embedded PostgreSQL in a temporary folder), sends reads and writes from ``--clients`` HTTP
clients, freezes PostgreSQL (SIGSTOP on the postmaster and every process it started: a hung
host or a partition) for ``--freeze`` seconds, then thaws it (SIGCONT). Measures, for every
request answered while the database was frozen, its status and latency against the promise —
within the request timeout ± 1 s — then how many acknowledged writes are missing after the thaw
(must be 0) and how long the service took to serve a read again. Linux only (SIGSTOP, /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from secevents.server import db
from secevents.server.http import auth

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "freeze.md"


@dataclass
class Run:
    frozen: bool = False
    answers: list[tuple[str, int, float, bool, bool]] = field(default_factory=list)
    """(kind, status, seconds, started frozen, ended frozen)"""
    acknowledged: list[str] = field(default_factory=list)
    """Titles of the writes answered 201."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def body_template(conn: asyncpg.Connection) -> dict[str, Any]:
    source = await conn.fetchrow("SELECT id::text, text FROM sources WHERE text IS NOT NULL LIMIT 1")
    orgs = await conn.fetch("SELECT id::text FROM organisations WHERE deleted_at IS NULL ORDER BY id LIMIT 2")
    assert source is not None and len(orgs) == 2
    return {
        "type": "battle",
        "occurred": {"start": "2023-12-12", "end": "2023-12-12", "precision": "day"},
        "location": {"country": "PK", "precision": "country"},
        "participants": [
            {"organisation_id": orgs[0]["id"], "role": "perpetrator"},
            {"organisation_id": orgs[1]["id"], "role": "target"},
        ],
        "citations": [{"source_id": source["id"], "quote": source["text"][100:160]}],
    }


async def client_loop(
    client: httpx.AsyncClient, run: Run, n: int, body: dict[str, Any], key: str, stop: asyncio.Event
) -> None:
    sent = 0
    while not stop.is_set():
        sent += 1
        started_frozen, started = run.frozen, time.monotonic()
        if n % 2:
            kind, title = "write", f"freeze bench {n}-{sent}"
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": title}
            response = await client.post("/v1/incidents", json={**body, "title": title}, headers=headers)
            if response.status_code == 201:
                run.acknowledged.append(title)
        else:
            kind = "read"
            response = await client.get("/v1/incidents", params={"limit": 5})
        run.answers.append(
            (kind, response.status_code, time.monotonic() - started, started_frozen, run.frozen)
        )
        await asyncio.sleep(0.05)


async def measure(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    port = free_port()
    env = {
        **os.environ,
        "SECEVENTS_DATA_DIR": str(data_dir),
        "SECEVENTS_PORT": str(port),
        "SECEVENTS_REQUEST_TIMEOUT": str(args.request_timeout),
        "SECEVENTS_RATE_LIMIT_WINDOW_SECONDS": "0",
        "SECEVENTS_POOL_MAX_SIZE": str(args.clients),
        "SECEVENTS_LOG_FORMAT": "text",
    }
    env.pop("DATABASE_URL", None)
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "secevents.server.cli.main",
        "serve",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    postgres = db.EmbeddedPostgres(data_dir)
    frozen: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            while True:
                assert server.returncode is None, "the server exited"
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            url = await asyncio.to_thread(postgres.start)  # a second handle on the app's server
            async with db.connect(url) as conn:
                key = (await auth.create_key(conn, name="freeze-bench", scopes=["write"])).key
                body = await body_template(conn)
            run, stop = Run(), asyncio.Event()
            clients = [
                asyncio.create_task(client_loop(client, run, n, body, key, stop)) for n in range(args.clients)
            ]
            await asyncio.sleep(2)
            frozen = postgres.freeze()
            run.frozen = True
            await asyncio.sleep(args.freeze)
            run.frozen = False
            postgres.thaw(frozen)
            frozen = []
            thawed = time.monotonic()
            while True:
                if (await client.get("/v1/incidents", params={"limit": 1})).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            recovered = time.monotonic() - thawed
            await asyncio.sleep(2)
            stop.set()
            await asyncio.gather(*clients)
            async with db.connect(url) as conn:
                stored = {
                    r["title"]
                    for r in await conn.fetch(
                        "SELECT title FROM incidents WHERE title = ANY($1::text[])", run.acknowledged
                    )
                }
    finally:
        if frozen:
            postgres.thaw(frozen)
        server.terminate()
        await server.wait()
    return {"run": run, "recovered": recovered, "missing": len(set(run.acknowledged) - stored)}


def report(args: argparse.Namespace, result: dict[str, Any]) -> str:
    run: Run = result["run"]
    during = [a for a in run.answers if a[4]]  # answered while frozen
    in_flight = [a for a in run.answers if a[3] or a[4]]  # started or answered while frozen
    hung = [a for a in run.answers if a[3] and not a[4]]  # started frozen, answered after the thaw
    lines = [
        "# Frozen database",
        "",
        "`make bench-freeze` (bench/freeze.py): the API served by `secevents serve` (one worker) over",
        f"an embedded PostgreSQL, {args.clients} HTTP clients (half reading `GET /v1/incidents`, half",
        f"writing `POST /v1/incidents`), PostgreSQL frozen by SIGSTOP for {args.freeze:g} s, then thawed.",
        f"`SECEVENTS_REQUEST_TIMEOUT={args.request_timeout:g}`, other settings at their defaults",
        "(`SECEVENTS_ROLLBACK_TIMEOUT=0.5`). The promise: every request answers within the request",
        "timeout ± 1 s, 503 problem+json with `Retry-After` or success.",
        "",
        "| | reads | writes |",
        "|---|---|---|",
    ]
    for label, rows in (
        ("answered while frozen", during),
        ("in flight at any time of the freeze", in_flight),
    ):
        counts = [sum(a[0] == kind for a in rows) for kind in ("read", "write")]
        lines.append(f"| {label} | {counts[0]} | {counts[1]} |")
    statuses = sorted({a[1] for a in in_flight})
    for status in statuses:
        counts = [sum(a[0] == kind and a[1] == status for a in in_flight) for kind in ("read", "write")]
        lines.append(f"| … answered {status} | {counts[0]} | {counts[1]} |")
    seconds = {kind: [a[2] for a in in_flight if a[0] == kind] for kind in ("read", "write")}
    for label, pick in (
        ("latency, median (s)", statistics.median),
        ("latency, slowest (s)", max),
    ):
        cells = [f"{pick(seconds[k]):.2f}" if seconds[k] else "–" for k in ("read", "write")]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    slowest = max(a[2] for a in in_flight)
    lines += [
        "",
        f"- Slowest answer: {slowest:.2f} s, {slowest - args.request_timeout:+.2f} s from the request timeout"
        f" ({'within' if abs(slowest - args.request_timeout) <= 1 else 'OUTSIDE'} the ± 1 s promise).",
        f"- Requests started during the freeze and answered after the thaw (the thaw came before their"
        f" timeout; their latency is in the table): {len(hung)}.",
        f"- Acknowledged writes: {len(run.acknowledged)}, missing after the thaw: {result['missing']}.",
        f"- First read served {result['recovered']:.2f} s after the thaw (no restart).",
        "",
        f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end of the run.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--request-timeout", type=float, default=5.0)
    parser.add_argument("--freeze", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="secevents-bench-freeze-", dir="/tmp") as tmp:
        result = asyncio.run(measure(args, Path(tmp) / "pg"))
    text = report(args, result)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
