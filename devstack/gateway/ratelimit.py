"""The account's rate limit: a token bucket holding one second's worth of requests."""

import math
import threading
import time

from .errors import RateLimited


class TokenBucket:
    def __init__(self, per_second: float) -> None:
        self._lock = threading.Lock()
        self.set_rate(per_second)

    def set_rate(self, per_second: float) -> None:
        """A new rate, with a full bucket."""
        with self._lock:
            self.per_second = per_second
            self._capacity = max(1.0, per_second)
            self._tokens = self._capacity
            self._filled_at = time.monotonic()

    def take(self) -> None:
        """Let one request through, or refuse it saying when one would be let through."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._filled_at) * self.per_second)
            self._filled_at = now
            if self._tokens < 1:
                retry_after = max(1, math.ceil((1 - self._tokens) / self.per_second))
                raise RateLimited("too many requests; slow down", retry_after=retry_after)
            self._tokens -= 1
