"""Receiving webhooks: check that a delivery comes from the server, then read it.

    from secevents import webhooks

    def receive(body: bytes, headers: Mapping[str, str]) -> None:   # in your web framework
        event = webhooks.verify(body, headers, secret)                # raises if not authentic
        if event.type != "webhook.test":
            apply(event.data)                  # a secevents.schemas.changes.Change

Deliveries follow the Standard Webhooks specification: ``webhook-signature`` is ``v1,`` and the
base64 HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}`` under the secret's key (the
``whsec_<base64>`` shown once when the endpoint was created). This is that algorithm with the
standard library (``hmac``, ``base64``), so the SDK still needs only ``httpx`` and ``msgspec``;
any Standard Webhooks library verifies the same messages. A message may come more than once:
drop repeats by ``webhook-id``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

import msgspec

from secevents._errors import SecEventsError
from secevents.schemas.webhooks import WebhookEvent

__all__ = ["DEFAULT_TOLERANCE", "WebhookVerificationError", "sign", "verify"]

DEFAULT_TOLERANCE = 300
"""Seconds a ``webhook-timestamp`` may be away from now (replayed or delayed messages)."""
_PREFIX = "whsec_"


class WebhookVerificationError(SecEventsError):
    """The message was not signed with this secret, is too old or too new, or is malformed."""


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    try:
        return base64.b64decode(secret.removeprefix(_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("The secret is not `whsec_<base64>`.") from exc


def sign(body: bytes | str, *, message_id: str, timestamp: int, secret: str | bytes) -> str:
    """The ``webhook-signature`` value of a message (``v1,<base64>``)."""
    data = body.encode() if isinstance(body, str) else body
    signed = f"{message_id}.{timestamp}.".encode() + data
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> WebhookEvent:
    """The delivered event, once its signature and timestamp check out against ``secret``;
    :class:`WebhookVerificationError` otherwise. ``body`` is the request body exactly as
    received (bytes, before any JSON parsing); ``headers`` in any letter case."""
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (message_id and timestamp and signatures):
        raise WebhookVerificationError("Missing webhook-id, webhook-timestamp or webhook-signature.")
    try:
        sent = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number of seconds.") from None
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is too far from now.")
    expected = sign(body, message_id=message_id, timestamp=sent, secret=secret)
    # Several signatures may be sent (one per secret while a secret is being rotated).
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        raise WebhookVerificationError("No signature matches this secret.")
    try:
        return msgspec.json.decode(body, type=WebhookEvent)
    except msgspec.ValidationError as exc:
        raise WebhookVerificationError(f"The body is not a webhook event: {exc}") from exc
