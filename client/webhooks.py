"""``secevents.webhooks``: verify and read webhook deliveries (see :mod:`secevents.lib.webhooks`)."""

from secevents.lib.webhooks import DEFAULT_TOLERANCE, WebhookVerificationError, sign, verify

__all__ = ["DEFAULT_TOLERANCE", "WebhookVerificationError", "sign", "verify"]
