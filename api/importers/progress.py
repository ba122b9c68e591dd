"""Progress of an import by phase: what it is doing now, how many rows each phase handled and
how fast, so a long step shows as that step (a byte count alone reads 100 % once the file is
read, then nothing while the database works).

The phases of both importers: ``read`` (parse and validate the input, stage it with COPY),
``check`` (what the database checks before writing), ``write`` (insert and update the records
and their child rows), ``documents`` (render the documents not rendered while reading),
``revisions`` (one per record written: the change feed) and, for exclusive imports, ``index``
(building the dropped indexes again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(slots=True)
class Phase:
    """One phase of an import, once it has ended: its rows and how long it took."""

    name: str
    rows: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        rate = f" ({self.rows / self.seconds:,.0f}/s)" if self.rows and self.seconds > 0 else ""
        return f"{self.name}: {self.rows:,} rows in {self.seconds:.2f} s{rate}"


@dataclass(slots=True)
class Phases:
    """Times the phases of an import. ``started`` hears each phase's name as it begins,
    ``ended`` each :class:`Phase` as it ends, ``read_bytes`` how much of the input is read so
    far (during ``read``); any of them may be None."""

    started: Callable[[str], None] | None = None
    ended: Callable[[Phase], None] | None = None
    read_bytes: Callable[[int], None] | None = None
    done: list[Phase] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str, rows: int = 0) -> Iterator[Phase]:
        """Time the body as phase ``name``; set ``rows`` on the yielded :class:`Phase` when
        the count is known only at the end."""
        if self.started is not None:
            self.started(name)
        phase = Phase(name, rows)
        start = time.perf_counter()
        yield phase
        phase.seconds = time.perf_counter() - start
        self.done.append(phase)
        if self.ended is not None:
            self.ended(phase)

    def bytes_read(self, done: int) -> None:
        if self.read_bytes is not None:
            self.read_bytes(done)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.done)
