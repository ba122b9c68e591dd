"""One delivery attempt: sign a message per the Standard Webhooks specification (with its
reference library, ``standardwebhooks``) and POST it to a checked address.

Headers: ``webhook-id`` (the same on every attempt of a message, for the receiver to drop
repeats), ``webhook-timestamp`` (seconds since the epoch, of this attempt) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``). Redirects are not
followed (a 3xx is a failure), proxies from the environment are not used, the whole attempt —
resolving, connecting, sending, the answer — has one short deadline, and only the first KiB of
the answer is read and kept.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass

import httpx
from standardwebhooks.webhooks import Webhook

from secevents.server.webhooks import addresses

EXCERPT_BYTES = 1024
USER_AGENT = "secevents-webhooks/1"


@dataclass(frozen=True, slots=True)
class Outcome:
    succeeded: bool
    status_code: int | None
    latency_ms: float
    error: str | None
    excerpt: str | None


class Sender:
    """Delivers messages; one per process, shared by the worker and ``POST …/test``."""

    def __init__(self, *, allow_private: bool, timeout: float) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        # No keep-alive: a pooled connection is keyed by address, and two host names behind one
        # address must not share a TLS connection negotiated for one of them.
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, url: str, *, secret: str, message_id: str, body: bytes) -> Outcome:
        started = time.perf_counter()
        try:
            target = await addresses.check(url, allow_private=self.allow_private, resolve_within=self.timeout)
        except addresses.UrlRefused as exc:
            return Outcome(False, None, _since(started), f"refused: {exc.detail}", None)
        now = dt.datetime.now(dt.UTC)
        headers = {
            "host": target.host,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "accept-encoding": "identity",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, now, body.decode()),
        }
        extensions = {"sni_hostname": target.tls_hostname} if target.tls_hostname else {}
        remaining = max(self.timeout - (time.perf_counter() - started), 0.1)
        try:
            # httpx's timeouts are per phase; this one bounds the whole exchange (a receiver
            # that drips its answer byte by byte included).
            async with asyncio.timeout(remaining):
                request = self._client.build_request(
                    "POST", target.url, content=body, headers=headers, extensions=extensions
                )
                response = await self._client.send(request, stream=True)
                try:
                    excerpt = await _excerpt(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(False, None, _since(started), f"timed out after {self.timeout:g} s", None)
        except httpx.HTTPError as exc:
            return Outcome(
                False, None, _since(started), f"{type(exc).__name__}: {exc}"[:500].replace("\x00", ""), None
            )
        status = response.status_code
        latency = _since(started)
        if 200 <= status < 300:
            return Outcome(True, status, latency, None, excerpt)
        reason = f"HTTP {status}"
        if 300 <= status < 400:
            reason += " (redirects are not followed)"
        return Outcome(False, status, latency, reason, excerpt)


async def _excerpt(response: httpx.Response) -> str | None:
    kept = b""
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) >= EXCERPT_BYTES:
            break
    # PostgreSQL text cannot hold NUL.
    return kept[:EXCERPT_BYTES].decode("utf-8", "replace").replace("\x00", "\ufffd") if kept else None


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
