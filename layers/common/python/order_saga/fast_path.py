"""A step's answer remembered in Redis, so a repeated call is answered without MySQL.

One key per step and order, `order-saga:<step>#<order_id>`, holds a JSON record. A call first
claims the key (SET NX, expiring with the invocation's remaining time, so a crashed call does not
block its retry); the claim then becomes the answer (kept `ttl` seconds), or is dropped when the
step raises, so a retry runs it again. A call that finds the answer returns it; one that finds
another call's claim, or finds Redis unreachable, runs the step anyway: MySQL is the guard, and
its row locks and state checks make the repeat harmless. So Redis only ever saves work.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from .observability import logger

KEY_PREFIX = "order-saga"
IN_PROGRESS = "INPROGRESS"
COMPLETED = "COMPLETED"

Answer = dict[str, Any]


def result_key(step: str, order_id: str) -> str:
    return f"{KEY_PREFIX}:{step}#{order_id}"


@dataclass(frozen=True)
class StepResults:
    client: "redis.Redis"
    ttl_seconds: int

    def answer(self, key: str, run: Callable[[], Answer], *, claim_ms: int) -> Answer:
        """The remembered answer under `key`, else `run()`'s, remembered when this call ran it
        alone. `claim_ms`: how long a claim outlives a call that never finishes."""
        try:
            claimed = self.client.set(key, json.dumps({"status": IN_PROGRESS}), nx=True, px=max(claim_ms, 1))
            if not claimed:
                record = json.loads(self.client.get(key) or "{}")
                if record.get("status") == COMPLETED:
                    return dict(record["answer"])
                return self._without_redis(run, "in progress elsewhere")
        except redis.RedisError as exc:
            return self._without_redis(run, type(exc).__name__)
        try:
            answer = run()
        except BaseException:
            self._forget(key)
            raise
        self._remember(key, answer)
        return answer

    @staticmethod
    def _without_redis(run: Callable[[], Answer], reason: str) -> Answer:
        logger.info("idempotency fast path unavailable; MySQL decides", extra={"reason": reason})
        return run()

    def _remember(self, key: str, answer: Answer) -> None:
        record = json.dumps({"status": COMPLETED, "answer": answer})
        self._quietly("remember the answer", self.client.set, key, record, ex=self.ttl_seconds)

    def _forget(self, key: str) -> None:
        self._quietly("drop the claim", self.client.delete, key)

    @staticmethod
    def _quietly(what: str, command: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """A write the answer does not depend on: when Redis refuses it, the claim expires with
        the invocation and MySQL guards the retry."""
        try:
            command(*args, **kwargs)
        except redis.RedisError as exc:
            logger.info(f"could not {what} in Redis", extra={"reason": type(exc).__name__})
