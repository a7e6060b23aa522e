"""Faults on demand: what the next matching `/v1` requests meet, held in memory until cleared."""

import threading
from dataclasses import dataclass, field
from typing import Any

from . import params
from .errors import IdempotencyKeyInUse, ParameterInvalid, RateLimited, Unavailable

# The kinds answered before execution; `slow`, `lost_answer` and `hold` act after it.
BEFORE_EXECUTION = ("unavailable", "rate_limit", "in_flight")
KINDS = (*BEFORE_EXECUTION, "slow", "lost_answer", "hold")
HOLD_SECONDS = 300.0  # the longest a held answer waits for the faults to be cleared


@dataclass
class Fault:
    kind: str
    path: str | None = None  # None: every /v1 request; else this path and those below it
    method: str | None = None  # None: any method; else GET or POST only
    count: int | None = None  # None: until cleared
    delay_ms: int | None = None  # `slow` only
    released: threading.Event = field(default_factory=threading.Event, compare=False)  # `hold`: cleared

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.path is None:
            return path.startswith("/v1/")
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")

    def as_json(self) -> dict[str, Any]:
        shown = {
            "kind": self.kind,
            "path": self.path,
            "method": self.method,
            "count": self.count,
            "delay_ms": self.delay_ms,
        }
        return {name: value for name, value in shown.items() if value is not None}


def parse_fault(body: dict[str, Any]) -> Fault:
    params.only(body, {"kind", "path", "method", "count", "delay_ms"})
    kind = params.required(body, "kind")
    if kind not in KINDS:
        raise ParameterInvalid(f"kind must be one of {', '.join(KINDS)}", param="kind")
    path = body.get("path")
    if path is not None and not (isinstance(path, str) and path.startswith("/v1/")):
        raise ParameterInvalid("path must be a path under /v1/", param="path")
    method = body.get("method")
    if method not in {None, "GET", "POST"}:
        raise ParameterInvalid("method must be GET or POST", param="method")
    count = None if body.get("count") is None else params.whole_number(body["count"], "count", minimum=1)
    if (kind == "slow") != ("delay_ms" in body):
        raise ParameterInvalid("delay_ms goes with a slow fault, and only with it", param="delay_ms")
    delay_ms = params.whole_number(body["delay_ms"], "delay_ms", minimum=0) if kind == "slow" else None
    return Fault(kind, path, method, count, delay_ms)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._holding: list[Fault] = []  # hold faults spent by their count, whose answers may still wait

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Remove every fault; the answers a `hold` keeps waiting go out."""
        with self._lock:
            for fault in (*self._faults, *self._holding):
                fault.released.set()
            self._faults.clear()
            self._holding.clear()

    def listed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.as_json() for fault in self._faults]

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault that matches the request, spending one of its count."""
        with self._lock:
            fault = next((fault for fault in self._faults if fault.matches(method, path)), None)
            if fault is not None and fault.count is not None:
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                    if fault.kind == "hold":
                        self._holding.append(fault)
            return fault


def refuse_before_execution(fault: Fault | None) -> None:
    """Answer as the fault says when it strikes before execution (nothing is done, nothing stored)."""
    if fault is None or fault.kind not in BEFORE_EXECUTION:
        return
    if fault.kind == "unavailable":
        raise Unavailable("the gateway is unavailable (a fault on demand)")
    if fault.kind == "rate_limit":
        raise RateLimited("too many requests (a fault on demand)", retry_after=1)
    raise IdempotencyKeyInUse("the key is in use by a request in flight (a fault on demand)")
