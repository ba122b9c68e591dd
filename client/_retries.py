"""When to retry, and how long to wait: exponential backoff with jitter, or ``Retry-After``."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import httpx

from secevents._constants import (
    DEFAULT_MAX_RETRIES,
    IN_FLIGHT_STATUS,
    INITIAL_RETRY_DELAY,
    MAX_RETRY_AFTER,
    MAX_RETRY_DELAY,
    RETRYABLE_STATUSES,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = INITIAL_RETRY_DELAY
    max_delay: float = MAX_RETRY_DELAY

    def should_retry(self, attempt: int, response: httpx.Response | None) -> bool:
        """``attempt`` counts retries already made; ``response`` is None for connection errors."""
        if attempt >= self.max_retries:
            return False
        if response is None:
            return True
        status = response.status_code
        if status == IN_FLIGHT_STATUS:
            return "retry-after" in response.headers
        return status in RETRYABLE_STATUSES or status >= 500

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        if response is not None:
            retry_after = parse_retry_after(response.headers)
            if retry_after is not None and 0 <= retry_after <= MAX_RETRY_AFTER:
                return retry_after
        backoff = min(self.initial_delay * 2.0**attempt, self.max_delay)
        # "Equal jitter": at least half the backoff, so clients that failed together spread out
        # without retrying immediately.
        return backoff / 2 + random.uniform(0, backoff / 2)


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` (delta-seconds or an HTTP date) or ``retry-after-ms``, in seconds."""
    milliseconds: str | None = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return float(milliseconds) / 1000
        except ValueError:
            pass
    value: str | None = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
