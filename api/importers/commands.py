"""The ``secevents import …`` commands: progress on a terminal, quiet otherwise, a summary."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from typing import TextIO

import asyncpg

from secevents.server import db
from secevents.server.importers import ImportFailed, collector_paused, ndjson, ucdp


def connect(url: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection for a bulk job: no statement timeout (a big file takes a while)."""
    return db.connect(url, statement_timeout="0", application_name="secevents-cli")


@contextmanager
def progress_bar(description: str, total: int, stream: TextIO) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on a terminal; nothing (``None``) when output is piped or logged."""
    if not stream.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(file=stream),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.update(task, completed=done)


def _file_size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


async def import_ucdp(
    url: str, paths: list[Path], *, skip_invalid: bool, exclusive: bool = False, out: TextIO, err: TextIO
) -> int:
    """Import each file in its own transaction; the exit status is 1 if any file failed."""
    status = 0
    async with connect(url) as conn:
        for path in paths:
            size = await asyncio.to_thread(_file_size, path)
            if size is None:
                print(f"{path}: no such file", file=err)
                status = 1
                continue
            try:
                with collector_paused(), progress_bar(path.name, size, err) as progress:
                    summary = await ucdp.import_file(
                        conn, path, skip_invalid=skip_invalid, progress=progress, exclusive=exclusive
                    )
            except ImportFailed as exc:
                print(str(exc), file=err)
                status = 1
                continue
            print(summary.report(), file=out)
    return status


async def import_ndjson(url: str, path: Path, *, exclusive: bool = False, out: TextIO, err: TextIO) -> int:
    size = await asyncio.to_thread(_file_size, path)
    if size is None:
        print(f"{path}: no such file", file=err)
        return 1
    async with connect(url) as conn:
        try:
            with collector_paused(), path.open("rb") as f, progress_bar(path.name, size, err) as progress:
                result = await ndjson.import_lines(
                    conn, ndjson.file_chunks(f, progress), actor="import:ndjson", exclusive=exclusive
                )
        except ImportFailed as exc:
            print(f"{path}: {exc}", file=err)
            return 1
    counts = ", ".join(f"{n} {kind}(s)" for kind, n in result.created.items()) or "nothing"
    print(f"{path}: {result.lines} line(s) read, created {counts}", file=out)
    return 0


def default_streams() -> tuple[TextIO, TextIO]:
    return sys.stdout, sys.stderr
