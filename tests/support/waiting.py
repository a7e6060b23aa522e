"""One time budget for all the waits of a test: it polls for what it waits for, and when the budget
is spent it fails saying what never happened. A test's budget stays below its tier's pytest limit
(TIER_TIMEOUTS in tests/conftest.py), so a slow run ends on that sentence, not on the limit."""

import time
from collections.abc import Callable
from typing import Any


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self, what: str) -> float:
        """The seconds left for `what` (a timeout to hand a blocking call); fails naming it when none are."""
        left = self.end - time.monotonic()
        assert left > 0, f"still waiting after {self.seconds:.0f}s for {what}"
        return left

    def wait_for(
        self,
        condition: Callable[[], object],
        what: str,
        every: float = 0.1,
        details: Callable[[], str] | None = None,
    ) -> Any:
        """Poll `condition()` until it holds, and return what it gave; past the deadline fail naming
        `what` (then `details()`, e.g. a server's log)."""
        while not (value := condition()):
            if time.monotonic() >= self.end:
                told = f"; {details()}" if details else ""
                raise AssertionError(f"still waiting after {self.seconds:.0f}s for {what}{told}")
            time.sleep(every)
        return value
