"""Revision history: every version of a record, who wrote it and when."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from secevents.schemas.changes import Operation, RecordType
from secevents.schemas.common import Base


class Cause(Base, kw_only=True):
    """The write of another record that made this revision: the record's document embeds that
    one (an incident names its participants' organisations), so when it changed (an
    organisation was renamed) this record moved to a new version too."""

    type: RecordType
    id: UUID
    version: int


class Revision(Base, kw_only=True):
    """A record as it was after one write. ``api_key_id`` is the key that wrote it (``null``
    for the sample dataset and importers run from the command line, named by ``actor``)."""

    type: RecordType
    id: UUID
    version: int
    operation: Operation
    committed_at: dt.datetime
    api_key_id: UUID | None = None
    actor: str
    cause: Cause | None = None
    """Set when another record's write caused this revision; ``null`` for a direct write."""
    data: dict[str, Any]


class RevisionPage(Base, kw_only=True):
    data: list[Revision]
    next_cursor: str | None = None
