"""ProcessPayment and RefundPayment against MariaDB, with the simulated gateway's ledger in Redis."""

import boto3
import pytest
import redis
from moto import mock_aws

from order_ops.audit import SimulatedLedger
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
from order_saga.steps.inventory import release_stock
from order_saga.steps.orders import mark_order_failed
from order_saga.steps.payment import process_payment, refund_payment
from order_saga.watchdog import SagaWatchdog
from tests.support.data import OrderFactory, query


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
    assert log(database, order_id) == [("ProcessPayment", "CHARGING"), ("ProcessPayment", "SUCCEEDED")]


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
    assert log(database, order_id) == [("ProcessPayment", "CHARGING"), ("ProcessPayment", "DECLINED")]


def test_an_unavailable_gateway_leaves_only_the_intent_until_it_answers(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory
) -> None:
    # Given a gateway that is unavailable for the first two attempts
    order_id = new_order(token="tok_unavailable_2")
    for _ in range(2):
        with pytest.raises(PaymentGatewayUnavailable):
            process_payment(database, gateway, order_id)
        assert [row["status"] for row in payments(database, order_id)] == ["CHARGING"]
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
    assert log(database, order_id) == [
        ("ProcessPayment", "CHARGING"),
        ("ProcessPayment", "SUCCEEDED"),
        ("RefundPayment", "REFUNDED"),
    ]


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


def test_the_intent_is_committed_before_the_gateway_is_called(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory
) -> None:
    # Given a gateway that charges, then loses its answer
    order_id = new_order(token="tok_lostAnswer")
    # When ProcessPayment calls it
    with pytest.raises(PaymentGatewayUnavailable):
        process_payment(database, gateway, order_id)
    # Then the charge landed, and our row says a charge may have: CHARGING, with the gateway key
    assert gateway.charges(order_id) == 1
    [row] = query(database, "SELECT status, idempotency_key FROM payments WHERE order_id = %s", order_id)
    assert row == {"status": "CHARGING", "idempotency_key": order_id}


def test_a_charge_whose_answer_was_lost_is_refunded_by_its_key_exactly_once(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory
) -> None:
    # Given a charge that landed without an answer
    order_id = new_order({"sku-1": 2}, token="tok_lostAnswer")
    with pytest.raises(PaymentGatewayUnavailable):
        process_payment(database, gateway, order_id)
    # When the compensation runs, twice
    first = refund_payment(database, gateway, order_id)
    second = refund_payment(database, gateway, order_id)
    # Then the gateway refunded that charge once, and the row says how much went back
    assert first == second
    assert gateway.refunds(order_id) == 1
    assert payments(database, order_id)[0]["status"] == "REFUNDED"
    assert str(payments(database, order_id)[0]["amount"]) == "19.98"
    assert log(database, order_id)[-1] == ("RefundPayment", "REFUNDED")


def test_a_retried_payment_on_a_charging_row_finds_the_first_charge(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory, redis_client: "redis.Redis"
) -> None:
    # Given a charge whose answer was lost, then a gateway that answers again (a retry)
    order_id = new_order(token="tok_lostAnswer")
    with pytest.raises(PaymentGatewayUnavailable):
        process_payment(database, gateway, order_id)
    with database.transaction() as cursor:
        cursor.execute("UPDATE orders SET payment_token = 'tok_visa' WHERE order_id = %s", (order_id,))
    # When ProcessPayment is retried
    outcome = process_payment(database, gateway, order_id)
    # Then it records the first charge: one charge in the ledger, the row SUCCESS with its reference
    assert outcome.status is PaymentStatus.SUCCESS
    assert gateway.charges(order_id) == 1
    [row] = payments(database, order_id)
    assert row["gateway_reference"] == SimulatedLedger(redis_client).entries([order_id])[order_id].reference


def test_a_refund_before_the_charge_moves_no_money_and_voids_the_key(
    database: Database, gateway: SimulatedGateway, new_order: OrderFactory
) -> None:
    # Given the intent was committed but the function died before calling the gateway
    order_id = new_order()
    with database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO payments (payment_id, order_id, amount, currency, idempotency_key, status)"
            " VALUES (UUID(), %s, 9.99, 'EUR', %s, 'CHARGING')",
            (order_id, order_id),
        )
    # When the compensation runs
    outcome = refund_payment(database, gateway, order_id)
    # Then the gateway had nothing to refund: no money moved, and the row says so
    assert outcome.status is PaymentStatus.REFUNDED
    assert str(outcome.amount) == "0.00"
    assert gateway.refunds(order_id) == 0
    assert log(database, order_id)[-1] == ("RefundPayment", "NOTHING_TO_REFUND")
    # and a charge still in flight under that key is declined by the gateway
    late = gateway.charge(order_id=order_id, amount=outcome.amount, currency="EUR", token="tok_visa")
    assert not late.approved
    assert gateway.charges(order_id) == 0


class ChargesAfterNothingToRefund(SimulatedGateway):
    """A gateway that does not void a key: its charge lands after RefundPayment was told "nothing
    to refund" (the compensation runs while the charge is on its way)."""

    def __init__(
        self,
        client: "redis.Redis",
        database: Database,
        *,
        refund_fails: bool = False,
        order_fails: bool = False,
    ) -> None:
        super().__init__(client)
        self.database = database
        self.refund_fails = refund_fails
        self.order_fails = order_fails  # the saga also releases the stock and ends the order FAILED

    def charge(self, **kwargs):  # type: ignore[no-untyped-def]
        refund_payment(self.database, SimulatedGateway(self._redis), kwargs["order_id"])
        if self.order_fails:
            release_stock(self.database, self._redis, kwargs["order_id"])
            mark_order_failed(self.database, self._redis, kwargs["order_id"], None)
        self._redis.delete(f"{self.PREFIX}:void:{kwargs['order_id']}")  # this gateway does not void
        return super().charge(**kwargs)

    def refund(self, **kwargs):  # type: ignore[no-untyped-def]
        if self.refund_fails:
            raise PaymentGatewayUnavailable("refunds are down")
        return super().refund(**kwargs)


def test_a_charge_that_lands_after_nothing_was_refunded_is_recorded_and_refunded(
    database: Database, redis_client: "redis.Redis", settings: Settings, new_order: OrderFactory
) -> None:
    # Given RefundPayment found nothing to refund while the charge was on its way
    order_id = new_order()
    late = ChargesAfterNothingToRefund(redis_client, Database(settings))
    # When the charge lands and ProcessPayment records it
    with pytest.raises(StepAlreadyCompensated):
        process_payment(database, late, order_id)
    # Then the money went back at once, and the log tells the story
    assert late.charges(order_id) == 1
    assert late.refunds(order_id) == 1
    [row] = payments(database, order_id)
    assert (row["status"], str(row["amount"])) == ("REFUNDED", "19.98")
    assert ("ProcessPayment", "LATE_CHARGE") in log(database, order_id)


def test_a_late_charge_whose_refund_fails_stays_recorded_as_money_taken(
    database: Database, redis_client: "redis.Redis", settings: Settings, new_order: OrderFactory
) -> None:
    # Given a late charge, and a gateway that cannot refund right now
    order_id = new_order()
    late = ChargesAfterNothingToRefund(redis_client, Database(settings), refund_fails=True)
    # When ProcessPayment records the charge and tries to give it back
    with pytest.raises(PaymentGatewayUnavailable):
        process_payment(database, late, order_id)
    # Then the row says the money is held (SUCCESS): the saga watchdog's sweep refunds it later
    [row] = payments(database, order_id)
    assert (row["status"], str(row["amount"])) == ("SUCCESS", "19.98")


def test_the_watchdogs_sweep_refunds_a_late_charge_on_a_failed_order_whose_refund_failed(
    database: Database, redis_client: "redis.Redis", settings: Settings, new_order: OrderFactory
) -> None:
    # Given an order the saga compensated and ended FAILED while its charge was on its way, and
    # the late charge's refund failed: a settled order holding money
    order_id = new_order()
    late = ChargesAfterNothingToRefund(redis_client, Database(settings), refund_fails=True, order_fails=True)
    with pytest.raises(PaymentGatewayUnavailable):
        process_payment(database, late, order_id)
    # and whose customer was told (so only the sweep's part over orders holding money finds it)
    with database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO notifications (order_id, kind, message_id) VALUES (%s, 'FAILURE_ALERT', 'sent')",
            (order_id,),
        )
    assert query(database, "SELECT status FROM orders WHERE order_id = %s", order_id) == [
        {"status": "FAILED"}
    ]
    assert payments(database, order_id)[0]["status"] == "SUCCESS"
    # When the saga watchdog's sweep runs, the gateway answering again (AWS: moto in-process)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        watchdog = SagaWatchdog(
            Database(settings),
            redis_client,
            SimulatedGateway(redis_client),
            boto3.client("stepfunctions", region_name="eu-west-1"),
            sqs,
            cancellation_arn="arn:aws:states:eu-west-1:123456789012:stateMachine:OrderCancellation",
            notification_queue_url=sqs.create_queue(QueueName="notifications")["QueueUrl"],
            compensation_dlq_url=sqs.create_queue(QueueName="compensation-dlq")["QueueUrl"],
        )
        outcomes = watchdog.settle_stuck(grace_seconds=0.001)
    # Then the charge is refunded once and the order stays FAILED
    assert [(o.order_id, o.action, o.status) for o in outcomes] == [(order_id, "settled", "FAILED")]
    assert (late.charges(order_id), late.refunds(order_id)) == (1, 1)
    [row] = payments(database, order_id)
    assert (row["status"], str(row["amount"])) == ("REFUNDED", "19.98")
    # and the next sweep finds nothing left to do
    with mock_aws():
        assert watchdog.settle_stuck(grace_seconds=0.001) == []
