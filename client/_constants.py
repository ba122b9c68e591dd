"""The SDK's defaults, in one place (Stainless's ``_constants.py``)."""

from __future__ import annotations

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
"""Seconds per attempt."""
DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5
"""Seconds before the first retry; doubled each time (with jitter) up to :data:`MAX_RETRY_DELAY`."""
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
"""Never wait longer than this for one retry, whatever ``Retry-After`` says: a caller that wants
to wait minutes can catch ``RateLimitError`` and decide for itself."""

# Statuses worth another attempt: the server may answer differently in a moment (and any 5xx).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# A 409 is retried only when it says when to come back (``Retry-After``): that is how the server
# answers while the first request with the same Idempotency-Key is still in flight. A genuine
# conflict (a unique value taken) has no Retry-After and would only come back again.
IN_FLIGHT_STATUS = 409

JSON = "application/json"
MSGPACK = "application/msgpack"
