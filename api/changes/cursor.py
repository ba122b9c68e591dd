"""Change-feed positions: transaction snapshots, and the signed cursors that carry them.

A consumer's position is a :class:`Snapshot` — which transactions it has seen whole — plus, while
it pages through one batch, the snapshot that closes the batch and the last ``seq`` it received
(see :mod:`secevents.server.changes.feed`). The cursor handed out is that position, compact JSON,
signed with HMAC-SHA256 under the database's ``change_feed.cursor_key`` (migration
0006_feed_snapshots): every worker, a restart and a standby accept it; an edited or made-up one is a
400. The bare numbers older versions handed out (``seq``) are recognised here and resolved by the
feed against the last seq written before that migration.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

import msgspec

from secevents.server.http.errors import InvalidParameter

_SIGNATURE_BYTES = 16
_VERSION = 1
# A snapshot lists the transactions running when it was taken (at most about max_connections):
# two of them stay well under the query-string limit.
MAX_CURSOR_LENGTH = 3000
NOT_OURS = "is not a change-feed cursor returned by this API (or was altered)"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A ``pg_snapshot``: transactions below ``xmin`` are finished, from ``xmax`` on not yet
    started, in between finished unless listed in ``xip``. Same rules as ``pg_visible_in_snapshot``."""

    xmin: int
    xmax: int
    xip: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), tuple(int(x) for x in xip.split(",") if x))

    def __str__(self) -> str:
        return f"{self.xmin}:{self.xmax}:{','.join(map(str, self.xip))}"

    def visible(self, xid: int) -> bool:
        return xid < self.xmin or (xid < self.xmax and xid not in self.xip)

    def covers(self, other: Snapshot) -> bool:
        """Whether every transaction ``other`` shows as finished is finished here too."""
        return other.xmax <= self.xmax and not any(other.visible(x) for x in self.xip)

    def union(self, other: Snapshot) -> Snapshot:
        """Finished in either. Snapshots of one server nest (the union is the newer one); a
        primary's and a standby's bounded one (see ``feed``) need not."""
        low, high = (self, other) if self.xmax <= other.xmax else (other, self)
        xip = tuple(x for x in high.xip if x >= low.xmax or x in low.xip)
        return Snapshot(xip[0] if xip else high.xmax, high.xmax, xip)

    def finished_before_oldest_running(self) -> Snapshot:
        """Only what finished before the oldest transaction still running: ``xmin:xmin:``."""
        return Snapshot(self.xmin, self.xmin)


# Before any transaction: every real snapshot has xmin >= 3. Revisions written before migration
# 0006_feed_snapshots carry xid 1: in every snapshot but this one, and in LEGACY.
ORIGIN = Snapshot(1, 1)
LEGACY = Snapshot(2, 2)


@dataclass(frozen=True, slots=True)
class FeedCursor:
    """Everything committed by the transactions ``seen`` shows as finished has been delivered;
    with ``batch`` set, so have the rows of the open batch (finished in ``batch``, not in
    ``seen``) up to ``after_seq``. ``last_seq`` bounds the batch's seqs from above."""

    seen: Snapshot
    batch: Snapshot | None = None
    after_seq: int = 0
    last_seq: int = 0


START = FeedCursor(ORIGIN)


def _pack(s: Snapshot) -> list[int | list[int]]:
    return [s.xmin, s.xmax - s.xmin, [x - s.xmin for x in s.xip]]


def _unpack(packed: tuple[int, int, list[int]]) -> Snapshot:
    xmin, span, xip = packed
    snapshot = Snapshot(xmin, xmin + span, tuple(xmin + x for x in xip))
    if xmin < 1 or span < 0 or any(not snapshot.xmin <= x < snapshot.xmax for x in snapshot.xip):
        raise ValueError("not a snapshot")
    return snapshot


_Packed = tuple[int, int, list[int]]
_Payload = tuple[int, _Packed, _Packed | None, int, int]


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, b"changes:" + payload, "sha256")[:_SIGNATURE_BYTES]

    def encode(self, cursor: FeedCursor) -> str:
        batch = _pack(cursor.batch) if cursor.batch is not None else None
        payload = msgspec.json.encode(
            [_VERSION, _pack(cursor.seen), batch, cursor.after_seq, cursor.last_seq]
        )
        return base64.urlsafe_b64encode(payload + self._sign(payload)).rstrip(b"=").decode()

    def decode(self, text: str) -> FeedCursor:
        """The position a cursor carries; 400 when this server did not make it."""
        if len(text) > MAX_CURSOR_LENGTH:
            raise InvalidParameter("after", NOT_OURS)
        try:
            token = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError) as exc:
            raise InvalidParameter("after", NOT_OURS) from exc
        payload, signature = token[:-_SIGNATURE_BYTES], token[-_SIGNATURE_BYTES:]
        if len(token) <= _SIGNATURE_BYTES or not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidParameter("after", NOT_OURS)
        try:
            version, seen, batch, after_seq, last_seq = msgspec.json.decode(payload, type=_Payload)
            if version != _VERSION:
                raise ValueError("unknown version")
            return FeedCursor(_unpack(seen), _unpack(batch) if batch else None, after_seq, last_seq)
        except (msgspec.ValidationError, ValueError) as exc:
            raise InvalidParameter("after", NOT_OURS) from exc


def legacy_seq(text: str) -> int | None:
    """The seq of a bare-number cursor from before migration 0006_feed_snapshots, else None.

    Such a number never parses as a signed cursor: a signed one is at least 22 characters."""
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None
