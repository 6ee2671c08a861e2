"""Retry policy: which failures are worth another try, and how long to wait before it."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timezone
from email.utils import parsedate_to_datetime

#: Statuses that mean "try again later" (request timeout, throttling, transient server trouble).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """A bounded retry budget per request.

    ``attempts`` counts every try (so ``attempts=5`` means up to 4 retries).  The wait before
    retry ``n`` (0-based) is ``uniform(0.5, 1) * min(max_delay, base_delay * 2**n)``; a
    ``Retry-After`` from the server replaces it, capped at ``max_retry_after``.
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def backoff(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry), with jitter."""
        return backoff_delay(retry, self.base_delay, self.max_delay, rng)

    def delay_for(self, retry: int, retry_after: str | None, now: float | None = None) -> float:
        """The wait before retry ``retry``, honouring a ``Retry-After`` header value when given."""
        hinted = parse_retry_after(retry_after, now=now) if retry_after else None
        if hinted is not None:
            return min(hinted, self.max_retry_after)
        return self.backoff(retry)


def backoff_delay(retry: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with "equal jitter": a value in ``[d/2, d]`` where ``d = min(cap, base*2**retry)``."""
    retry = max(0, retry)
    ceiling = min(cap, base * (2.0 ** min(retry, 30)))
    return ceiling * (0.5 + 0.5 * rng())


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
