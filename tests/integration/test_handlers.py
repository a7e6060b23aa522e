"""The Lambda handlers as the runtime calls them: input validation, the idempotency fast path."""

import uuid
from typing import Any

import pytest
import redis

from order_saga import cache, lambda_step
from order_saga import settings as settings_module
from order_saga.db import Database
from order_saga.errors import InvalidOrder, OrderNotFound
from order_saga.functions import FUNCTIONS, function
from order_saga.manifest import STATE_MACHINE_STEPS
from order_saga.settings import Settings
from tests.support.data import TABLES, OrderFactory, query
from tests.support.lambda_runtime import invoke

STEP_FUNCTIONS = [spec for spec in FUNCTIONS if spec.name in STATE_MACHINE_STEPS]
BAD_EVENTS = [
    ({}, "order_id: Field required"),
    ({"order_id": "not-a-uuid"}, "order_id: String should match pattern"),
    ({"order_id": 123}, "order_id: Input should be a valid string"),
    ({"order_id": None}, "order_id: Input should be a valid string"),
    ({"order_id": str(uuid.uuid4()).upper()}, "order_id: String should match pattern"),
    ("ProcessPayment", "Input should be a valid dictionary"),
]


def row_counts(database: Database) -> dict[str, int]:
    return {table: query(database, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] for table in TABLES}


@pytest.mark.parametrize("spec", STEP_FUNCTIONS, ids=lambda spec: spec.name)
@pytest.mark.parametrize(("event", "problem"), BAD_EVENTS, ids=[str(i) for i in range(len(BAD_EVENTS))])
def test_bad_input_is_one_clear_error_and_writes_nothing(
    lambda_env: Settings, database: Database, new_order: OrderFactory, spec: Any, event: Any, problem: str
) -> None:
    new_order()
    before = row_counts(database)
    with pytest.raises(InvalidOrder, match=problem):
        invoke(spec, event)
    assert row_counts(database) == before


@pytest.mark.parametrize("name", ["MarkOrderFailed", "RefundPayment"])
def test_a_malformed_error_is_rejected(lambda_env: Settings, new_order: OrderFactory, name: str) -> None:
    with pytest.raises(InvalidOrder, match="error"):
        invoke(function(name), {"order_id": new_order(), "error": "boom"})


@pytest.mark.parametrize("spec", STEP_FUNCTIONS, ids=lambda spec: spec.name)
def test_an_unknown_order_is_not_found(lambda_env: Settings, database: Database, spec: Any) -> None:
    with pytest.raises(OrderNotFound):
        invoke(spec, {"order_id": str(uuid.uuid4())})
    assert sum(row_counts(database).values()) == 0


def test_a_step_takes_the_state_it_is_given(
    lambda_env: Settings, database: Database, new_order: OrderFactory
) -> None:
    # Given the state machine's state, with the results of earlier steps beside the order_id
    order_id = new_order({"sku-1": 1})
    state = {"order_id": order_id, "payment": {"payment_id": "x"}, "execution": "arn:..."}
    # When a step's handler gets it, then it uses the order_id and answers JSON
    assert invoke(function("ProcessPayment"), state)["status"] == "SUCCESS"
    assert invoke(function("ReserveStock"), state)["reservations"][0]["status"] == "RESERVED"
    assert invoke(function("ConfirmOrder"), state) == {
        "order_id": order_id,
        "status": "CONFIRMED",
        "failure_reason": None,
        "reason_code": None,
        "owed_compensations": [],
    }


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"order_id": str(uuid.uuid4())}, "detail: Field required"),
        ({"detail": {"name": "not-an-order", "status": "ABORTED"}}, "detail.name: String should match"),
        ({"sweep_older_than_seconds": -1}, "sweep_older_than_seconds: Input should be greater than 0"),
    ],
)
def test_the_watchdog_takes_an_execution_status_change_and_nothing_else(
    lambda_env: Settings, database: Database, new_order: OrderFactory, event: Any, problem: str
) -> None:
    new_order()
    before = row_counts(database)
    with pytest.raises(InvalidOrder, match=problem):
        invoke(function("SagaWatchdog"), event)
    assert row_counts(database) == before


def test_a_repeated_step_is_answered_from_redis(
    lambda_env: Settings, database: Database, redis_client: "redis.Redis", new_order: OrderFactory
) -> None:
    # Given ReserveStock succeeded once
    order_id = new_order({"sku-1": 1})
    first = invoke(function("ReserveStock"), {"order_id": order_id})
    # When its reservation row vanishes behind its back and the step is called again
    with database.transaction() as cursor:
        cursor.execute("DELETE FROM inventory_reservations WHERE order_id = %s", (order_id,))
    second = invoke(function("ReserveStock"), {"order_id": order_id})
    # Then the answer is the remembered one: MySQL was not asked (no row was re-created)
    assert second == first
    assert query(database, "SELECT COUNT(*) AS n FROM inventory_reservations") == [{"n": 0}]
    assert any("reserve_stock" in key for key in redis_client.scan_iter())


def test_without_redis_the_database_still_guards(
    lambda_env: Settings, database: Database, new_order: OrderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Redis unreachable (the fast path and the feeds are gone, MySQL is there)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("REDIS_TIMEOUT", "0.2")
    for cached in (settings_module.get_settings, cache.get_redis, lambda_step._step_results):
        cached.cache_clear()
    order_id = new_order({"sku-1": 1})
    # When ReserveStock runs twice, then it works and reserves once
    invoke(function("ReserveStock"), {"order_id": order_id})
    invoke(function("ReserveStock"), {"order_id": order_id})
    assert query(database, "SELECT reserved FROM inventory WHERE product_id = 'sku-1'") == [{"reserved": 1}]
