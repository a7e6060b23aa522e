"""ReconcilePayments as the schedule invokes it, on MariaDB and the gateway server: the money rules
over the window's settled orders, a metric of each count, and the ledger read in pages."""

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from devstack.gateway.process import PaymentGatewayServer
from order_saga.db import Database
from order_saga.errors import InvalidOrder, PaymentDeclined
from order_saga.functions import function
from order_saga.payment_gateway import PAGE_SIZE, HttpGateway
from order_saga.reconciliation.ledger import HttpLedger, LedgerEntry
from order_saga.settings import Settings
from order_saga.steps.inventory import release_stock, reserve_stock
from order_saga.steps.orders import confirm_order, mark_order_failed
from order_saga.steps.payment import process_payment, refund_payment
from tests.support.data import OrderFactory
from tests.support.gateway import charge_body, client_of, new_key
from tests.support.lambda_runtime import invoke

RECONCILE = function("ReconcilePayments")


def metrics_published(output: str) -> dict[str, Any]:
    """The values of the metrics the invocation printed in CloudWatch's embedded metric format."""
    published: dict[str, Any] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            [directive] = document["_aws"]["CloudWatchMetrics"]
            for metric in directive["Metrics"]:
                published[metric["Name"]] = (directive["Namespace"], document[metric["Name"]])
    return published


@dataclass(frozen=True)
class Shop:
    """Orders taken through the saga's own steps, on the test database and the gateway server."""

    database: Database
    gateway: HttpGateway
    cache: Any
    new_order: OrderFactory

    def confirmed(self) -> str:
        order_id = self.new_order({"sku-1": 1})
        process_payment(self.database, self.gateway, order_id)
        reserve_stock(self.database, self.cache, order_id)
        confirm_order(self.database, self.cache, order_id)
        return order_id

    def declined(self) -> str:
        order_id = self.new_order({"sku-2": 1}, token="tok_chargeDeclined")
        with pytest.raises(PaymentDeclined):
            process_payment(self.database, self.gateway, order_id)
        refund_payment(self.database, self.gateway, order_id)
        release_stock(self.database, self.cache, order_id)
        mark_order_failed(self.database, self.cache, order_id, None)
        return order_id


@pytest.fixture
def shop(
    lambda_env: Settings, database: Database, gateway: HttpGateway, redis_client: Any, new_order: OrderFactory
) -> Shop:
    """The books, with the process environment ReconcilePayments has when deployed."""
    return Shop(database, gateway, redis_client, new_order)


def test_clean_books_publish_no_violation_and_count_the_settled_orders(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a confirmed order, a declined one, and one still in flight (not judged)
    shop.confirmed()
    shop.declined()
    shop.new_order({"sku-1": 1})
    capsys.readouterr()
    # When the schedule invokes the function over the last day
    outcome = invoke(RECONCILE, {"window_seconds": 86400})
    # Then both settled orders were judged, none offends, and the metrics say so
    assert (outcome["orders"], outcome["violations"]) == (2, 0)
    assert metrics_published(capsys.readouterr().out) == {
        "OrdersReconciled": ("OrderSaga", [2.0]),
        "MoneyViolations": ("OrderSaga", [0.0]),
    }


def test_a_success_with_no_charge_at_the_gateway_is_a_violation_logged_with_its_order(
    shop: Shop, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a clean confirmed order, and one whose payments row says SUCCESS for a charge the
    # gateway never made
    shop.confirmed()
    order_id = shop.new_order({"sku-1": 1})
    with shop.database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO payments (payment_id, order_id, amount, currency, status, gateway_reference)"
            " SELECT UUID(), order_id, total, currency, 'SUCCESS', 'ch_never_made' FROM orders"
            " WHERE order_id = %s",
            (order_id,),
        )
        cursor.execute("UPDATE orders SET status = 'CONFIRMED' WHERE order_id = %s", (order_id,))
    capsys.readouterr()
    # When the function runs
    outcome = invoke(RECONCILE, {})
    # Then both money rules name that order, the metric counts two violations, and each is logged
    assert outcome["orders"] == 2
    assert outcome["violations"] == 2
    assert {name: [o["subject"] for o in found] for name, found in outcome["offences"].items()} == {
        "money per order": [order_id],
        "payments row vs ledger": [order_id],
    }
    output = capsys.readouterr().out
    assert metrics_published(output)["MoneyViolations"] == ("OrderSaga", [2.0])
    logged = [record for record in caplog.records if record.getMessage() == "money violation"]
    assert {(vars(record)["order_id"], vars(record)["invariant"]) for record in logged} == {
        (order_id, "money per order"),
        (order_id, "payments row vs ledger"),
    }


def test_orders_created_before_the_window_are_left_out(
    lambda_env: Settings, database: Database, new_order: OrderFactory
) -> None:
    # Given an order with broken money, created two hours ago
    order_id = new_order({"sku-1": 1})
    with database.transaction() as cursor:
        cursor.execute(
            "UPDATE orders SET status = 'CONFIRMED', created_at = CURRENT_TIMESTAMP(3) - INTERVAL 2 HOUR"
            " WHERE order_id = %s",
            (order_id,),
        )
    # Then a run over the last hour does not judge it, and one over the last day does
    assert invoke(RECONCILE, {"window_seconds": 3600})["orders"] == 0
    assert invoke(RECONCILE, {"window_seconds": 86400})["violations"] == 1


def test_a_window_that_is_not_a_positive_number_of_seconds_is_refused(lambda_env: Settings) -> None:
    with pytest.raises(InvalidOrder, match="window_seconds"):
        invoke(RECONCILE, {"window_seconds": 0})


def test_the_ledger_reads_every_page_and_groups_by_order(
    gateway: HttpGateway, payment_gateway_server: PaymentGatewayServer
) -> None:
    # Given more charges than a page holds, one order declined, and one refunded by a refund that
    # names its charge only
    books = client_of(payment_gateway_server)
    orders = [new_key() for _ in range(PAGE_SIZE + 5)]
    charged = {
        order_id: books.post("/v1/charges", charge_body(order_id), key=order_id).json() for order_id in orders
    }
    declined_order = new_key()
    books.post("/v1/charges", charge_body(declined_order, "tok_chargeDeclined"), key=declined_order)
    refunded_order = orders[0]
    books.post(
        "/v1/refunds",
        {"charge": charged[refunded_order]["id"], "amount": 250},
        key=f"refund-{refunded_order}",
    )
    # When the ledger is read for those orders and one the gateway never saw
    entries = HttpLedger(gateway).entries([*orders, declined_order, "never-charged"], created_since=None)
    # Then each charged order has its entry, amounts in units, the refund counted on its order
    assert set(entries) == {*orders, declined_order}
    assert entries[orders[-1]] == LedgerEntry(Decimal("12.50"), Decimal(0), charged[orders[-1]]["id"])
    assert entries[refunded_order].net == Decimal("10.00")
    assert entries[declined_order] == LedgerEntry(declined=True)
