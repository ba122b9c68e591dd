"""The change feed: every create, update and delete in commit order."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from uuid import UUID

from secevents.schemas.common import Base
from secevents.schemas.records import Operation, RecordType

__all__ = ["Change", "ChangeEvent", "ChangePage", "Operation", "RecordType"]


class Change(Base, kw_only=True):
    """One committed write. ``data`` is the record as of ``version`` (its v1 document), or
    ``null`` with ``deleted: true`` for a delete (a tombstone). ``cursor`` resumes the feed right
    after this change (pass it as ``after``); ``seq`` identifies the change but is not a position:
    changes committed later may carry smaller ones."""

    seq: int
    type: RecordType
    id: UUID
    version: int
    operation: Operation
    committed_at: dt.datetime
    deleted: bool = False
    data: dict[str, Any] | None = None
    cursor: str | None = None


class ChangePage(Base, kw_only=True):
    """``next_cursor`` is always set: pass it as ``after`` to get the changes committed since.
    ``has_more`` says whether more changes were already waiting when this page was read."""

    data: list[Change]
    next_cursor: str
    has_more: bool = False


class ChangeEvent(Base, kw_only=True):
    """One event of the ``text/event-stream`` of ``GET /v1/changes/stream``, field by field:
    ``event: change``, ``id:`` the cursor right after the change (send it back as
    ``Last-Event-ID``), ``data:`` the change as JSON (a :class:`Change`, as the feed lists it).
    Comment lines (heartbeats) carry no event."""

    event: Literal["change"] = "change"
    id: str
    data: str
