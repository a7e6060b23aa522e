"""ProcessPayment and RefundPayment against MariaDB and the gateway server, over HTTP through the
adapter the functions use (docs/payment-gateway.md)."""

from decimal import Decimal

import boto3
import pytest
import redis
import urllib3
from moto import mock_aws

from devstack.gateway.process import PaymentGatewayServer
from order_saga.db import Database
from order_saga.errors import (
    OrderCancelled,
    PaymentDeclined,
    PaymentDisagreement,
    PaymentGatewayUnavailable,
    StepAlreadyCompensated,
)
from order_saga.models import PaymentStatus
from order_saga.payment_gateway import HttpGateway
from order_saga.settings import Settings
from order_saga.steps.payment import process_payment, refund_payment
from order_saga.watchdog import SagaWatchdog
from tests.support.data import OrderFactory, query
from tests.support.gateway import books


def payments(database: Database, order_id: str) -> list[dict[str, object]]:
    return query(
        database, "SELECT status, amount, gateway_reference FROM payments WHERE order_id = %s", order_id
    )


def log(database: Database, order_id: str) -> list[tuple[str, str]]:
    rows = query(database, "SELECT step, status FROM saga_log WHERE saga_id = %s ORDER BY id", order_id)
    return [(row["step"], row["status"]) for row in rows]


def test_a_payment_taken_twice_charges_once(
    database: Database, gateway: HttpGateway, new_order: OrderFactory
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
    assert books(gateway, order_id)[0] == 1
    assert len(payments(database, order_id)) == 1
    assert log(database, order_id) == [("ProcessPayment", "CHARGING"), ("ProcessPayment", "SUCCEEDED")]


def test_a_declined_card_fails_the_same_way_every_time(
    database: Database, gateway: HttpGateway, new_order: OrderFactory
) -> None:
    order_id = new_order(token="tok_chargeDeclined")
    with pytest.raises(PaymentDeclined, match="generic_decline"):
        process_payment(database, gateway, order_id)
    with pytest.raises(PaymentDeclined, match="generic_decline"):
        process_payment(database, gateway, order_id)
    rows = payments(database, order_id)
    assert [row["status"] for row in rows] == ["FAILED"]
    assert rows[0]["gateway_reference"] is None  # nothing was charged
    assert log(database, order_id) == [("ProcessPayment", "CHARGING"), ("ProcessPayment", "DECLINED")]


def test_an_unavailable_gateway_leaves_only_the_intent_until_it_answers(
    database: Database, gateway: HttpGateway, new_order: OrderFactory
) -> None:
    # Given a gateway that is unavailable for the first two attempts
    order_id = new_order(token="tok_unavailable_2")
    for _ in range(2):
        with pytest.raises(PaymentGatewayUnavailable):
            process_payment(database, gateway, order_id)
        assert [row["status"] for row in payments(database, order_id)] == ["CHARGING"]
    # When the state machine retries a third time, then it succeeds
    assert process_payment(database, gateway, order_id).status is PaymentStatus.SUCCESS
    assert books(gateway, order_id)[0] == 1


def test_a_cancelled_order_is_not_charged(
    database: Database, gateway: HttpGateway, new_order: OrderFactory
) -> None:
    order_id = new_order()
    with database.transaction() as cursor:
        cursor.execute("UPDATE orders SET cancel_requested = TRUE WHERE order_id = %s", (order_id,))
    with pytest.raises(OrderCancelled):
        process_payment(database, gateway, order_id)
    assert books(gateway, order_id)[0] == 0
    assert payments(database, order_id) == []


def test_a_refund_given_twice_refunds_once(
    database: Database, gateway: HttpGateway, new_order: OrderFactory
) -> None:
    order_id = new_order()
    process_payment(database, gateway, order_id)
    first = refund_payment(database, gateway, order_id)
    second = refund_payment(database, gateway, order_id)
    assert first == second
    assert first.status is PaymentStatus.REFUNDED
    assert books(gateway, order_id)[1] == 1
    assert log(database, order_id) == [
        ("ProcessPayment", "CHARGING"),
        ("ProcessPayment", "SUCCEEDED"),
        ("RefundPayment", "REFUNDED"),
    ]


def test_a_refund_with_nothing_charged_stops_a_late_payment(
    database: Database, gateway: HttpGateway, new_order: OrderFactory
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
    assert books(gateway, order_id)[0] == 0
    assert [row["status"] for row in payments(database, order_id)] == ["REFUNDED"]
    assert log(database, order_id) == [("RefundPayment", "NOTHING_TO_UNDO")]


def test_a_refund_of_a_declined_payment_changes_nothing(
    database: Database, gateway: HttpGateway, new_order: OrderFactory
) -> None:
    order_id = new_order(token="tok_chargeDeclined")
    with pytest.raises(PaymentDeclined):
        process_payment(database, gateway, order_id)
    assert refund_payment(database, gateway, order_id).status is PaymentStatus.FAILED
    assert books(gateway, order_id)[1] == 0


@pytest.mark.parametrize(
    ("token", "decline_code"),
    [("tok_chargeDeclinedInsufficientFunds", "insufficient_funds"), ("tok_bogus", "invalid_token")],
)
def test_a_decline_is_read_from_the_gateways_error(
    database: Database, gateway: HttpGateway, new_order: OrderFactory, token: str, decline_code: str
) -> None:
    # Given a card the gateway declines with a reason of its own
    order_id = new_order(token=token)
    # When ProcessPayment charges it, then the decline names the gateway's reason
    with pytest.raises(PaymentDeclined, match=decline_code):
        process_payment(database, gateway, order_id)
    assert ("ProcessPayment", "DECLINED") in log(database, order_id)
    assert books(gateway, order_id) == (0, 0)


class RefundsDuringCharge(HttpGateway):
    """The adapter, whose charge is slow enough for the compensation to run meanwhile."""

    def __init__(self, server: PaymentGatewayServer, database: Database) -> None:
        super().__init__(server.url, lambda _fresh: server.api_key, timeout=10)
        self.database = database

    def charge(self, **kwargs):  # type: ignore[no-untyped-def]
        result = super().charge(**kwargs)
        refund_payment(self.database, self, kwargs["order_id"])
        return result


def test_a_charge_that_lands_while_its_compensation_runs_is_given_back(
    database: Database,
    payment_gateway_server: PaymentGatewayServer,
    settings: Settings,
    new_order: OrderFactory,
) -> None:
    # Given RefundPayment commits while the gateway is still answering the charge (our row has no
    # charge id yet: the compensation finds the charge by cancelling the intent)
    order_id = new_order()
    racing = RefundsDuringCharge(payment_gateway_server, Database(settings))
    # When ProcessPayment then records its charge
    with pytest.raises(StepAlreadyCompensated):
        process_payment(database, racing, order_id)
    # Then the money went back at once and the order's payment row stays the compensation's
    assert books(racing, order_id) == (1, 1)
    [row] = payments(database, order_id)
    assert (row["status"], str(row["amount"])) == ("REFUNDED", "19.98")
    assert row["gateway_reference"] is not None  # the charge the cancel named


def test_the_intent_is_committed_before_the_gateway_is_called(
    database: Database, gateway: HttpGateway, new_order: OrderFactory
) -> None:
    # Given a gateway that charges, then loses its answer
    order_id = new_order(token="tok_lostAnswer")
    # When ProcessPayment calls it
    with pytest.raises(PaymentGatewayUnavailable):
        process_payment(database, gateway, order_id)
    # Then the charge landed, and our row says a charge may have: CHARGING, with the gateway key
    assert books(gateway, order_id)[0] == 1
    [row] = query(database, "SELECT status, idempotency_key FROM payments WHERE order_id = %s", order_id)
    assert row == {"status": "CHARGING", "idempotency_key": order_id}


def test_a_charge_whose_answer_was_lost_is_refunded_by_its_key_exactly_once(
    database: Database, gateway: HttpGateway, new_order: OrderFactory
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
    assert books(gateway, order_id)[1] == 1
    assert payments(database, order_id)[0]["status"] == "REFUNDED"
    assert str(payments(database, order_id)[0]["amount"]) == "19.98"
    assert log(database, order_id)[-1] == ("RefundPayment", "REFUNDED")


def test_a_retried_payment_on_a_charging_row_finds_the_first_charge(
    database: Database,
    gateway: HttpGateway,
    payment_gateway_server: PaymentGatewayServer,
    new_order: OrderFactory,
) -> None:
    # Given a charge whose answer was lost once (the gateway charged, then the connection dropped)
    order_id = new_order()
    payment_gateway_server.add_fault({"kind": "lost_answer", "count": 1, "path": "/v1/charges"})
    with pytest.raises(PaymentGatewayUnavailable):
        process_payment(database, gateway, order_id)
    # When ProcessPayment is retried
    outcome = process_payment(database, gateway, order_id)
    # Then it records the first charge: one charge in the ledger, the row SUCCESS with its reference
    assert outcome.status is PaymentStatus.SUCCESS
    assert books(gateway, order_id)[0] == 1
    [row] = payments(database, order_id)
    [charge] = gateway.listed("/v1/charges", {"metadata[order_id]": order_id})
    assert row["gateway_reference"] == charge["id"]


def test_a_refund_before_the_charge_moves_no_money_and_cancels_the_intent(
    database: Database, gateway: HttpGateway, new_order: OrderFactory
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
    assert books(gateway, order_id)[1] == 0
    assert log(database, order_id)[-1] == ("RefundPayment", "NOTHING_TO_REFUND")
    # and a charge still in flight under that key is declined by the gateway
    late = gateway.charge(order_id=order_id, amount=Decimal("9.99"), currency="EUR", token="tok_visa")
    assert (late.approved, late.decline_code) == (False, "intent_canceled")
    assert books(gateway, order_id)[0] == 0


def test_a_charge_the_gateway_does_not_know_is_a_disagreement_left_owed(
    database: Database, gateway: HttpGateway, new_order: OrderFactory
) -> None:
    # Given our row records a charge the gateway has no trace of (a restored backup, another account)
    order_id = new_order()
    process_payment(database, gateway, order_id)
    with database.transaction() as cursor:
        cursor.execute(
            "UPDATE payments SET gateway_reference = 'ch_unknown' WHERE order_id = %s", (order_id,)
        )
    # When the compensation runs
    with pytest.raises(PaymentDisagreement, match="ch_unknown"):
        refund_payment(database, gateway, order_id)
    # Then nothing is settled: the row still says the money is held, the log says why, and the
    # gateway's charge is untouched (no refund "by key" guessed its way around our record)
    assert payments(database, order_id)[0]["status"] == "SUCCESS"
    assert log(database, order_id)[-1] == ("RefundPayment", "DISAGREES")
    assert books(gateway, order_id) == (1, 0)


def test_a_charge_refunded_by_another_hand_is_recorded_with_that_refund(
    database: Database,
    gateway: HttpGateway,
    payment_gateway_server: PaymentGatewayServer,
    new_order: OrderFactory,
) -> None:
    # Given a charge someone refunded at the gateway by hand (under an idempotency key of theirs)
    order_id = new_order()
    process_payment(database, gateway, order_id)
    [row] = payments(database, order_id)
    reply = urllib3.request(
        "POST",
        f"{payment_gateway_server.url}/v1/refunds",
        json={"charge": row["gateway_reference"]},
        headers={"Authorization": f"Bearer {payment_gateway_server.api_key}", "Idempotency-Key": "by-hand-1"},
        timeout=10,
    )
    assert reply.status == 200, reply.data
    # When the compensation runs
    outcome = refund_payment(database, gateway, order_id)
    # Then it records that refund: the money went back once, and no second refund was made
    assert (outcome.status, str(outcome.amount)) == (PaymentStatus.REFUNDED, "19.98")
    assert books(gateway, order_id) == (1, 1)


def test_the_watchdogs_sweep_refunds_a_failed_order_that_still_holds_money(
    database: Database,
    redis_client: "redis.Redis",
    gateway: HttpGateway,
    settings: Settings,
    new_order: OrderFactory,
) -> None:
    # Given an order FAILED whose charge was never refunded (its refund was lost to a crash), and
    # whose customer was told (so only the sweep's part over orders holding money finds it)
    order_id = new_order()
    process_payment(database, gateway, order_id)
    with database.transaction() as cursor:
        cursor.execute("UPDATE orders SET status = 'FAILED' WHERE order_id = %s", (order_id,))
        cursor.execute(
            "INSERT INTO notifications (order_id, kind, message_id) VALUES (%s, 'FAILURE_ALERT', 'sent')",
            (order_id,),
        )
    # When the saga watchdog's sweep runs (AWS: moto in-process)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        watchdog = SagaWatchdog(
            Database(settings),
            redis_client,
            gateway,
            boto3.client("stepfunctions", region_name="eu-west-1"),
            sqs,
            saga_arn="arn:aws:states:eu-west-1:123456789012:stateMachine:OrderSaga",
            cancellation_arn="arn:aws:states:eu-west-1:123456789012:stateMachine:OrderCancellation",
            notification_queue_url=sqs.create_queue(QueueName="notifications")["QueueUrl"],
            compensation_dlq_url=sqs.create_queue(QueueName="compensation-dlq")["QueueUrl"],
        )
        outcomes = watchdog.settle_stuck(grace_seconds=0.001)
    # Then the charge is refunded once, through the gateway, and the order stays FAILED
    assert [(o.order_id, o.action, o.status) for o in outcomes] == [(order_id, "settled", "FAILED")]
    assert books(gateway, order_id) == (1, 1)
    [row] = payments(database, order_id)
    assert (row["status"], str(row["amount"])) == ("REFUNDED", "19.98")
    # and the next sweep finds nothing left to do
    with mock_aws():
        assert watchdog.settle_stuck(grace_seconds=0.001) == []
