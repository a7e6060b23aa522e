"""The steps' fast path on the real redis-server: an answer is remembered once its step ran alone,
a failure or a crash leaves nothing that blocks a retry, and Redis never decides alone."""

import json
import time

import pytest
import redis

from order_saga.fast_path import COMPLETED, IN_PROGRESS, StepResults, result_key
from order_saga.settings import Settings

ORDER = "0f0e0d0c-0b0a-4908-8706-050403020100"
KEY = result_key("reserve_stock", ORDER)


class Step:
    """A step that counts its runs and answers its run number."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self) -> dict[str, int]:
        self.runs += 1
        return {"run": self.runs}


@pytest.fixture
def results(redis_client: "redis.Redis") -> StepResults:
    return StepResults(redis_client, ttl_seconds=60)


def test_a_repeated_call_is_answered_from_redis_for_the_ttl(
    results: StepResults, redis_client: "redis.Redis"
) -> None:
    step = Step()
    assert results.answer(KEY, step, claim_ms=10_000) == {"run": 1}
    assert results.answer(KEY, step, claim_ms=10_000) == {"run": 1}
    assert step.runs == 1
    # (under one key per step and order, which operators and the e2e tests find by its pattern)
    assert redis_client.keys() == [f"order-saga:reserve_stock#{ORDER}"]
    assert json.loads(redis_client.get(KEY) or "") == {"status": COMPLETED, "answer": {"run": 1}}
    assert 55 <= redis_client.ttl(KEY) <= 60


def test_a_call_that_raises_leaves_nothing_so_the_retry_runs(
    results: StepResults, redis_client: "redis.Redis"
) -> None:
    def failing() -> dict[str, int]:
        raise RuntimeError("gateway down")

    with pytest.raises(RuntimeError, match="gateway down"):
        results.answer(KEY, failing, claim_ms=10_000)
    assert redis_client.exists(KEY) == 0
    assert results.answer(KEY, Step(), claim_ms=10_000) == {"run": 1}


def test_a_call_that_meets_another_calls_claim_runs_on_mysql_and_remembers_nothing(
    results: StepResults, redis_client: "redis.Redis"
) -> None:
    # Given another invocation of the same step and order, running now
    redis_client.set(KEY, json.dumps({"status": IN_PROGRESS}), px=10_000)
    # When this one comes, then it runs the step itself and leaves the claim alone
    step = Step()
    assert results.answer(KEY, step, claim_ms=10_000) == {"run": 1}
    assert step.runs == 1
    assert json.loads(redis_client.get(KEY) or "") == {"status": IN_PROGRESS}


def test_the_claim_of_a_call_that_never_finished_expires_with_its_invocation(
    results: StepResults, redis_client: "redis.Redis"
) -> None:
    # Given a call that claimed the key with 200 ms left and was then killed (a Lambda timeout)
    def killed() -> dict[str, int]:
        raise KeyboardInterrupt

    redis_client.set(KEY, json.dumps({"status": IN_PROGRESS}), nx=True, px=200)
    assert 0 < redis_client.pttl(KEY) <= 200
    # When the retry comes after that time, then it claims the key and its answer is remembered
    time.sleep(0.3)
    with pytest.raises(KeyboardInterrupt):
        results.answer(KEY, killed, claim_ms=10_000)
    assert results.answer(KEY, Step(), claim_ms=10_000) == {"run": 1}
    assert json.loads(redis_client.get(KEY) or "")["status"] == COMPLETED


@pytest.mark.parametrize("breaks", ["before the claim", "after the claim"])
def test_without_redis_the_step_runs_and_answers(
    settings: Settings, redis_client: "redis.Redis", breaks: str
) -> None:
    # Given Redis unreachable from the start, or lost while the step runs
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=0.2)
    results = StepResults(client, ttl_seconds=60)
    step = Step()

    def lose_redis() -> None:
        client.connection_pool.connection_kwargs["port"] = 1
        client.connection_pool.disconnect()
        client.connection_pool.reset()  # new connections, to the port above

    if breaks == "before the claim":
        lose_redis()

    def run() -> dict[str, int]:
        answer = step()
        lose_redis()
        return answer

    # When the step is called, then it runs and answers, twice (nothing was remembered)
    assert results.answer(KEY, run, claim_ms=10_000) == {"run": 1}
    assert results.answer(KEY, run, claim_ms=10_000) == {"run": 2}
    client.close()
