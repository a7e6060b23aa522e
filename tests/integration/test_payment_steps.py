"""ProcessPayment and RefundPayment against MariaDB, with the simulated gateway's ledger in Redis."""

import pytest
import redis

from order_saga.db import Database
from order_saga.errors import (
    OrderCancelled,
    PaymentDeclined,
    PaymentGatewayUnavailable,
    StepAlreadyCompensated,
)
from order_saga.models import PaymentStatus
from order_saga.payment_gateway import SimulatedGateway
from order_saga.settings import Settings
from order_saga.steps.payment import process_payment, refund_payment
from tests.integration.conftest import OrderFactory, query


@pytest.fixture
def gateway(redis_client: "redis.Redis") -> SimulatedGateway:
    return SimulatedGateway(redis_client)


def payments(database: Database, order_id: str) -> list[dict[str, object]]:
    return query(
        database, "SELECT status, amount, gateway_reference FROM payments WHERE order_id = %s", order_id
    )


def log(database: Database, order_id: str) -> list[tuple[str, str]]:
    rows = query(database, "SELECT step, status FROM saga_log WHERE saga_id = %s ORDER BY id", order_id)
    return [(row["step"], row["status"]) for row in rows]


def test_a_payment_taken_twice_charges_once(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory
) -> None:
    # Given a PENDING order of 2 x 9.99
    order_id = new_order({"sku-1": 2})
    # When ProcessPayment runs twice (a retry, a duplicate delivery)
    first = process_payment(database, gateway, order_id)
    second = process_payment(database, gateway, order_id)
    # Then one charge, one row, the same answer, one log entry
    assert first == second
    assert first.status is PaymentStatus.SUCCESS
    assert str(first.amount) == "19.98"
    assert gateway.charges(order_id) == 1
    assert len(payments(database, order_id)) == 1
    assert log(database, order_id) == [("ProcessPayment", "SUCCEEDED")]


def test_a_declined_card_fails_the_same_way_every_time(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory
) -> None:
    order_id = new_order(token="tok_chargeDeclined")
    with pytest.raises(PaymentDeclined, match="card_declined"):
        process_payment(database, gateway, order_id)
    with pytest.raises(PaymentDeclined, match="card_declined"):
        process_payment(database, gateway, order_id)
    rows = payments(database, order_id)
    assert [row["status"] for row in rows] == ["FAILED"]
    assert rows[0]["gateway_reference"] is None  # nothing was charged
    assert log(database, order_id) == [("ProcessPayment", "DECLINED")]


def test_an_unavailable_gateway_writes_nothing_until_it_answers(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory
) -> None:
    # Given a gateway that is unavailable for the first two attempts
    order_id = new_order(token="tok_unavailable_2")
    for _ in range(2):
        with pytest.raises(PaymentGatewayUnavailable):
            process_payment(database, gateway, order_id)
        assert payments(database, order_id) == []
    # When the state machine retries a third time, then it succeeds
    assert process_payment(database, gateway, order_id).status is PaymentStatus.SUCCESS
    assert gateway.charges(order_id) == 1


def test_a_cancelled_order_is_not_charged(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory
) -> None:
    order_id = new_order()
    with database.transaction() as cursor:
        cursor.execute("UPDATE orders SET cancel_requested = TRUE WHERE order_id = %s", (order_id,))
    with pytest.raises(OrderCancelled):
        process_payment(database, gateway, order_id)
    assert gateway.charges(order_id) == 0
    assert payments(database, order_id) == []


def test_a_refund_given_twice_refunds_once(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory
) -> None:
    order_id = new_order()
    process_payment(database, gateway, order_id)
    first = refund_payment(database, gateway, order_id)
    second = refund_payment(database, gateway, order_id)
    assert first == second
    assert first.status is PaymentStatus.REFUNDED
    assert gateway.refunds(order_id) == 1
    assert log(database, order_id) == [("ProcessPayment", "SUCCEEDED"), ("RefundPayment", "REFUNDED")]


def test_a_refund_with_nothing_charged_stops_a_late_payment(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory
) -> None:
    # Given RefundPayment ran before any charge (ProcessPayment timed out before reaching the gateway)
    order_id = new_order()
    outcome = refund_payment(database, gateway, order_id)
    assert outcome.status is PaymentStatus.REFUNDED
    assert str(outcome.amount) == "0.00"
    # When the late ProcessPayment arrives
    with pytest.raises(StepAlreadyCompensated):
        process_payment(database, gateway, order_id)
    # Then it is rejected before the gateway and changes nothing
    assert gateway.charges(order_id) == 0
    assert [row["status"] for row in payments(database, order_id)] == ["REFUNDED"]
    assert log(database, order_id) == [("RefundPayment", "NOTHING_TO_UNDO")]


def test_a_refund_of_a_declined_payment_changes_nothing(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory
) -> None:
    order_id = new_order(token="tok_chargeDeclined")
    with pytest.raises(PaymentDeclined):
        process_payment(database, gateway, order_id)
    assert refund_payment(database, gateway, order_id).status is PaymentStatus.FAILED
    assert gateway.refunds(order_id) == 0


class RefundsDuringCharge(SimulatedGateway):
    """A gateway whose charge is slow enough for the compensation to run meanwhile."""

    def __init__(self, client: "redis.Redis", database: Database) -> None:
        super().__init__(client)
        self.database = database

    def charge(self, **kwargs):  # type: ignore[no-untyped-def]
        result = super().charge(**kwargs)
        refund_payment(self.database, SimulatedGateway(self._redis), kwargs["order_id"])
        return result


def test_a_charge_that_lands_after_its_compensation_is_given_back(
    database: Database, redis_client: "redis.Redis", settings: Settings, new_order: OrderFactory
) -> None:
    # Given RefundPayment commits while the gateway is still charging
    order_id = new_order()
    racing = RefundsDuringCharge(redis_client, Database(settings))
    # When ProcessPayment then records its charge
    with pytest.raises(StepAlreadyCompensated):
        process_payment(database, racing, order_id)
    # Then the money went back at once and the order's payment row stays the compensation's marker
    assert racing.charges(order_id) == 1
    assert racing.refunds(order_id) == 1
    assert [row["status"] for row in payments(database, order_id)] == ["REFUNDED"]
