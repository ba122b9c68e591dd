"""Compression of list pages: bytes and CPU per page for each coding the server offers
(api/http/compression.py), on real pages of 50 and 100 incidents (the sample dataset plus the
1,000-event UCDP sample), compressed as the middleware compresses them (same levels).

``python -m bench.compression`` with ``DATABASE_URL`` naming an empty or bench database; the
section "Compression" of bench/results/read.md is rewritten with the results.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx

from secevents.server import db
from secevents.server.app import create_app
from secevents.server.http.compression import COMPRESSORS
from secevents.server.importers import seed, ucdp
from secevents.server.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "read.md"
UCDP_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "ucdp" / "ged_global_sample_1000.csv"
HEADING = "## Compression of list pages"
ROUNDS = 200


async def _prepare(url: str) -> None:
    await asyncio.to_thread(db.upgrade, url)
    conn = await asyncpg.connect(url)
    try:
        await db.init_connection(conn)
        await seed.load_if_empty(conn)
        if await conn.fetchval("SELECT count(*) FROM incidents") < 200:
            await ucdp.import_file(conn, UCDP_SAMPLE)
    finally:
        await conn.close()


async def _pages(url: str) -> dict[int, bytes]:
    settings = Settings.from_env()
    settings = replace(settings, database=replace(settings.database, url=url, migrate_on_start=False))
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # Litestar is an ASGI app
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        pages = {}
        for limit in (50, 100):
            response = await client.get(
                "/v1/incidents", params={"limit": limit}, headers={"Accept-Encoding": "identity"}
            )
            response.raise_for_status()
            pages[limit] = response.content
        return pages


def _measure(body: bytes, coding: str) -> tuple[int, float]:
    """(compressed bytes, CPU milliseconds per page) over ROUNDS compressions."""
    size = 0
    started = time.process_time()
    for _ in range(ROUNDS):
        compressor = COMPRESSORS[coding]()
        size = len(compressor.compress(body) + compressor.finish())
    return size, (time.process_time() - started) * 1000 / ROUNDS


def main() -> int:
    url = os.environ["DATABASE_URL"]
    asyncio.run(_prepare(url))
    pages = asyncio.run(_pages(url))
    lines = [
        HEADING,
        "",
        f"`python -m bench.compression` ({platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores shared, load average {os.getloadavg()[0]:.1f}): the API's own page of "
        f"incidents (sample + UCDP 1,000), each coding at the server's level, CPU of this process per "
        f"page, mean of {ROUNDS} compressions.",
        "",
        "| page | coding | bytes | ratio | CPU ms / page |",
        "|---|---|---:|---:|---:|",
    ]
    for limit, body in pages.items():
        lines.append(f"| {limit} incidents | identity | {len(body):,} | 1.00 | 0 |")
        for coding in ("gzip", "br", "zstd"):
            size, cpu_ms = _measure(body, coding)
            lines.append(
                f"| {limit} incidents | {coding} | {size:,} | {len(body) / size:.1f} | {cpu_ms:.2f} |"
            )
    section = "\n".join(lines) + "\n"
    text = RESULTS.read_text()
    if HEADING in text:
        start = text.index(HEADING)
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
