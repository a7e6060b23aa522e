"""The books auditor against books written by the real saga steps (MariaDB, the gateway server's
ledger read over HTTP, SES, SQS and Step Functions from moto), then broken one way at a time:
each break is reported by the invariant that owns it, and clean books pass."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import redis
from moto import mock_aws

from devstack.gateway.process import PaymentGatewayServer
from order_ops.audit import (
    AuditReport,
    HttpLedger,
    OwedInMySql,
    QueueAttention,
    StepFunctionsExecutions,
    run_audit,
)
from order_ops.audit.invariants import Reclaimed
from order_ops.commands_audit import audit_books
from order_saga.db import Database
from order_saga.errors import PaymentDeclined
from order_saga.payment_gateway import HttpGateway, cents, create_gateway
from order_saga.settings import Settings
from order_saga.steps.inventory import release_stock, reserve_stock
from order_saga.steps.notification import (
    CLAIM_STALE_AFTER_SECONDS,
    NotificationKind,
    NotificationMessage,
    send_notification,
)
from order_saga.steps.orders import confirm_order, mark_needs_attention, mark_order_failed
from order_saga.steps.payment import process_payment, refund_payment
from tests.support.data import OrderFactory, claim_notice
from tests.support.gateway import GatewayClient, charge_body, client_of
from tests.support.moto_env import use_in_process_moto
from tests.support.waiting import Deadline

SENDER = "orders@example.com"
ROLE = "arn:aws:iam::123456789012:role/audit-test"
# Each execution ends in the state its input names: the final states of the real machines.
ENDS = ("OrderConfirmed", "OrderFailed", "SagaNeedsAttention", "StillRunning")


def definition() -> str:
    states: dict[str, Any] = {
        "Route": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.end", "StringEquals": end, "Next": end} for end in ENDS],
        },
        "OrderConfirmed": {"Type": "Succeed"},
        "OrderFailed": {"Type": "Fail", "Error": "PaymentDeclined"},
        "SagaNeedsAttention": {"Type": "Fail", "Error": "CompensationFailed"},
        "StillRunning": {"Type": "Wait", "Seconds": 3600, "Next": "OrderConfirmed"},
    }
    return json.dumps({"StartAt": "Route", "States": states})


@dataclass
class World:
    """Books written by the saga's own steps, and the AWS side beside them."""

    database: Database
    cache: "redis.Redis"
    gateway: HttpGateway  # the adapter the saga's steps charge and refund through
    books: GatewayClient  # the same gateway's API, for what is done behind the saga's back
    new_order: OrderFactory
    sfn: Any
    sqs: Any
    ses: Any
    saga_arn: str
    dlq_url: str
    deadline: Deadline  # of the test's waits for moto's executions to end

    def sql(self, statement: str, *params: object) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(statement, params)

    def notify(self, order_id: str, kind: NotificationKind) -> None:
        message = NotificationMessage(order_id=order_id, kind=kind)
        send_notification(self.database, self.ses, SENDER, message, claimant="audit-test")

    def execution(self, order_id: str, end: str) -> None:
        arn = self.sfn.start_execution(
            stateMachineArn=self.saga_arn, name=order_id, input=json.dumps({"end": end})
        )["executionArn"]
        if end != "StillRunning":  # moto runs the execution on a thread of its own
            self.deadline.wait_for(
                lambda: self.sfn.describe_execution(executionArn=arn)["status"] != "RUNNING",
                f"the execution of {order_id} to reach {end}",
                every=0.01,
            )

    def confirmed(self, items: dict[str, int] | None = None) -> str:
        order_id = self.new_order(items or {"sku-1": 2})
        process_payment(self.database, self.gateway, order_id)
        reserve_stock(self.database, self.cache, order_id)
        confirm_order(self.database, self.cache, order_id)
        self.notify(order_id, NotificationKind.ORDER_CONFIRMATION)
        self.execution(order_id, "OrderConfirmed")
        return order_id

    def compensate(self, order_id: str) -> None:
        refund_payment(self.database, self.gateway, order_id)
        release_stock(self.database, self.cache, order_id)

    def declined(self) -> str:
        order_id = self.new_order({"sku-2": 1}, token="tok_chargeDeclined")
        with pytest.raises(PaymentDeclined):
            process_payment(self.database, self.gateway, order_id)
        self.compensate(order_id)
        mark_order_failed(self.database, self.cache, order_id, None)
        self.notify(order_id, NotificationKind.FAILURE_ALERT)
        self.execution(order_id, "OrderFailed")
        return order_id

    def out_of_stock_after_charge(self) -> str:
        """Charged, then short of stock (1 left, 2 wanted): refunded, FAILED."""
        order_id = self.new_order({"sku-3": 2})
        process_payment(self.database, self.gateway, order_id)
        self.compensate(order_id)
        mark_order_failed(self.database, self.cache, order_id, None)
        self.notify(order_id, NotificationKind.FAILURE_ALERT)
        self.execution(order_id, "OrderFailed")
        return order_id

    def needs_attention(self) -> str:
        """Charged and reserved, then every compensation failed: the order holds both."""
        order_id = self.new_order({"sku-1": 1})
        process_payment(self.database, self.gateway, order_id)
        reserve_stock(self.database, self.cache, order_id)
        mark_needs_attention(self.database, self.cache, order_id, None)
        self.execution(order_id, "SagaNeedsAttention")
        return order_id

    def needs_attention_without_record(self) -> str:
        """As `needs_attention`, with the record of what it owes lost (an older schema's orders)."""
        order_id = self.needs_attention()
        self.sql("UPDATE orders SET owed_compensations = '' WHERE order_id = %s", order_id)
        return order_id

    def record_on_dlq(self, order_id: str) -> None:
        self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=json.dumps({"order_id": order_id}))

    def audit(self, **options: Any) -> AuditReport:
        peek = lambda: [  # noqa: E731 - the queue's bodies, read without consuming them
            json.loads(m["Body"])
            for m in self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0
            ).get("Messages", [])
        ]
        return run_audit(
            self.database,
            HttpLedger(self.gateway),
            StepFunctionsExecutions(self.sfn, {"OrderSaga": self.saga_arn}),
            [OwedInMySql(self.database), QueueAttention("compensation-dlq", peek)],
            **{"deadline_seconds": 3600.0} | options,
        )


@pytest.fixture
def world(
    database: Database,
    redis_client: "redis.Redis",
    gateway: HttpGateway,
    payment_gateway_server: PaymentGatewayServer,
    new_order: OrderFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    with database.transaction() as cursor:
        cursor.execute("TRUNCATE TABLE notifications")  # not among the tables the fixture empties
    use_in_process_moto(monkeypatch)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn, sqs, ses = boto3.client("stepfunctions"), boto3.client("sqs"), boto3.client("ses")
        ses.verify_email_identity(EmailAddress=SENDER)
        saga_arn = sfn.create_state_machine(name="OrderSaga", definition=definition(), roleArn=ROLE)[
            "stateMachineArn"
        ]
        dlq_url = sqs.create_queue(QueueName="compensation-dlq")["QueueUrl"]
        # every wait of a test together stays below the integration tier's limit
        books = client_of(payment_gateway_server)
        yield World(
            database, redis_client, gateway, books, new_order, sfn, sqs, ses, saga_arn, dlq_url, Deadline(240)
        )


def offenders(report: AuditReport) -> dict[str, set[str]]:
    """Invariant name -> the subjects it names (only invariants with violations)."""
    return {r.name: {o.subject for o in r.offences} for r in report.results if r.offences}


def test_clean_books_pass_every_invariant(world: World) -> None:
    # Given books of every ending: confirmed, declined, refunded after a failed step, and one
    # NEEDS_ATTENTION order whose record is in MySQL and on the compensation DLQ
    ids = [world.confirmed(), world.declined(), world.out_of_stock_after_charge(), world.needs_attention()]
    world.record_on_dlq(ids[3])
    baseline = {"sku-1": 20, "sku-2": 5, "sku-3": 1}
    # When the auditor reads them
    report = world.audit(stock_baseline=baseline)
    # Then no invariant has a violation, each checked something, and the attention order is listed
    assert offenders(report) == {}
    assert report.ok
    assert report.orders == 4
    assert all(result.checked for result in report.results), [r.name for r in report.results if not r.checked]
    [owed] = report.owed
    assert (owed.order_id, str(owed.refund), owed.units, owed.records) == (
        ids[3],
        "9.99",
        {"sku-1": 1},
        ("compensation-dlq", "mysql"),
    )
    assert f"needs attention: {ids[3]} owes refund 9.99, sku-1x1 [compensation-dlq, mysql]" in report.render()
    assert json.loads(json.dumps(report.as_json()))["violations"] == 0


def test_an_attention_order_that_holds_nothing_is_listed_as_owing_nothing_by_the_books(world: World) -> None:
    # Given an order flagged because a compensation could not be confirmed, though it holds nothing
    order_id = world.needs_attention()
    refund_payment(world.database, world.gateway, order_id)
    release_stock(world.database, world.cache, order_id)
    # Then the auditor lists it with what the books say it owes: nothing, so a person may resolve it
    report = world.audit()
    assert f"needs attention: {order_id} owes nothing by the books [mysql]" in report.render()


def test_a_stuck_order_is_reported_only_past_the_deadline(world: World) -> None:
    order_id = world.new_order({"sku-1": 1})  # PENDING, never started
    assert world.audit().in_flight == [order_id]
    assert offenders(world.audit()) == {}
    assert offenders(world.audit(deadline_seconds=0)) == {"orders end truthfully": {order_id}}


def test_an_execution_that_closed_on_a_pending_order_is_named_with_its_end(world: World) -> None:
    # Given a PENDING order whose saga ended in SagaNeedsAttention (its last step failed too)
    order_id = world.new_order({"sku-1": 1})
    world.execution(order_id, "SagaNeedsAttention")
    process_payment(world.database, world.gateway, order_id)
    # Then past the deadline both the order, with the money it holds, and the execution's end are reported
    report = world.audit(deadline_seconds=0)
    [stuck] = [r for r in report.results if r.name == "orders end truthfully"]
    assert stuck.offences[0].detail.endswith(", the gateway holds 9.99")
    assert offenders(report) == {"orders end truthfully": {order_id}, "executions vs status": {order_id}}
    [execution] = [r for r in report.results if r.name == "executions vs status"]
    assert execution.offences[0].detail == "OrderSaga ended SagaNeedsAttention, order left PENDING"


def test_needs_attention_without_a_record_is_reported_with_what_it_holds(world: World) -> None:
    # Given a NEEDS_ATTENTION order holding money and stock, and no record of it anywhere
    order_id = world.needs_attention_without_record()
    report = world.audit()
    # Then its end, its money and its stock are each reported
    assert offenders(report) == {
        "orders end truthfully": {order_id},
        "money per order": {order_id},
        "stock per order": {order_id},
    }
    assert report.owed[0].records == ()


def test_a_charge_with_no_payments_row_is_money_kept(world: World) -> None:
    # Given a FAILED order that the gateway charged without our record (another intent's charge
    # for the same order, the payments row lost)
    order_id = world.declined()
    world.sql("DELETE FROM payments WHERE order_id = %s", order_id)
    body = charge_body(order_id, amount=cents(world_total(world, order_id)))
    assert world.books.post("/v1/charges", body, key=f"elsewhere-{order_id}").status == 200
    assert offenders(world.audit()) == {"money per order": {order_id}, "payments row vs ledger": {order_id}}


def world_total(world: World, order_id: str) -> Any:
    with world.database.transaction() as cursor:
        cursor.execute("SELECT total FROM orders WHERE order_id = %s", (order_id,))
        row = cursor.fetchone()
    assert row is not None
    return row["total"]


def test_a_payments_row_that_disagrees_with_the_ledger(world: World) -> None:
    order_id = world.confirmed()
    world.sql("UPDATE payments SET amount = amount + 1 WHERE order_id = %s", order_id)
    assert offenders(world.audit()) == {"payments row vs ledger": {order_id}}


def test_a_confirmed_order_refunded_behind_its_back(world: World) -> None:
    # Given a CONFIRMED order whose charge was refunded in full at the gateway, by a refund that
    # names the charge but no order of ours
    order_id = world.confirmed()
    [charge] = world.gateway.listed("/v1/charges", {"metadata[order_id]": order_id})
    assert world.books.refund(charge["id"]).status == 200
    report = offenders(world.audit())
    assert report == {"money per order": {order_id}, "payments row vs ledger": {order_id}}


def test_a_success_the_gateway_never_charged(world: World) -> None:
    # Given a CONFIRMED order whose payments row says SUCCESS for a charge the gateway never made
    order_id = world.confirmed()
    world.sql("UPDATE payments SET gateway_reference = 'ch_nowhere' WHERE order_id = %s", order_id)
    assert offenders(world.audit()) == {"payments row vs ledger": {order_id}}


def test_reserved_units_no_reservation_accounts_for(world: World) -> None:
    world.confirmed()
    world.sql("UPDATE inventory SET reserved = reserved + 1 WHERE product_id = 'sku-1'")
    assert offenders(world.audit()) == {"reserved = live reservations": {"sku-1"}}


def test_stock_held_by_a_failed_order(world: World) -> None:
    # Given a FAILED order whose reservation was never released (MarkOrderFailed refuses that, so
    # the books are broken by hand)
    order_id = world.new_order({"sku-1": 3})
    process_payment(world.database, world.gateway, order_id)
    reserve_stock(world.database, world.cache, order_id)
    refund_payment(world.database, world.gateway, order_id)
    world.sql("UPDATE orders SET status = 'FAILED' WHERE order_id = %s", order_id)
    world.sql(
        "INSERT INTO saga_log (saga_id, step, status) VALUES (%s, 'MarkOrderFailed', 'FAILED')", order_id
    )
    world.notify(order_id, NotificationKind.FAILURE_ALERT)
    # Then the order is named (inventory.reserved itself agrees with the reservation rows)
    assert offenders(world.audit()) == {"stock per order": {order_id}}


def test_stock_that_moved_without_a_confirmed_order(world: World) -> None:
    world.confirmed({"sku-1": 2})
    baseline = {"sku-1": 20, "sku-2": 5, "sku-3": 1}
    assert offenders(world.audit(stock_baseline=baseline)) == {}
    world.sql("UPDATE inventory SET stock = stock - 1 WHERE product_id = 'sku-2'")
    assert offenders(world.audit(stock_baseline=baseline)) == {"stock = baseline - committed": {"sku-2"}}


def test_reserved_beyond_stock_is_reported_where_no_check_constraint_stops_it(world: World) -> None:
    # Given a schema without the CHECK (as an older MySQL would ignore it) and more reserved than stock
    world.sql("ALTER TABLE inventory DROP CONSTRAINT ck_inventory_reserved")
    try:
        world.sql("UPDATE inventory SET reserved = 7 WHERE product_id = 'sku-2'")
        report = offenders(world.audit())
    finally:
        world.sql("UPDATE inventory SET reserved = 0")
        world.sql(
            "ALTER TABLE inventory ADD CONSTRAINT ck_inventory_reserved"
            " CHECK (reserved >= 0 AND reserved <= stock)"
        )
    assert report["0 <= reserved <= stock"] == {"sku-2"}


def test_executions_that_disagree_with_their_order(world: World) -> None:
    # Given a confirmed order whose execution still runs, and one whose execution ended OrderFailed
    running = world.new_order({"sku-1": 1})
    failed_run = world.new_order({"sku-2": 1})
    for order_id in (running, failed_run):
        process_payment(world.database, world.gateway, order_id)
        reserve_stock(world.database, world.cache, order_id)
        confirm_order(world.database, world.cache, order_id)
        world.notify(order_id, NotificationKind.ORDER_CONFIRMATION)
    world.execution(running, "StillRunning")
    world.execution(failed_run, "OrderFailed")
    # Then the ended one disagrees at once, the running one once it is past the deadline
    assert offenders(world.audit()) == {"executions vs status": {failed_run}}
    assert set(offenders(world.audit(deadline_seconds=0))["executions vs status"]) == {running, failed_run}


def test_notices_missing_contradicting_or_twice(world: World) -> None:
    confirmed, failed = world.confirmed(), world.declined()
    world.sql("DELETE FROM notifications WHERE order_id = %s", failed)  # the alert was never sent
    world.sql("DELETE FROM saga_log WHERE saga_id = %s AND step = 'SendFailureAlert'", failed)
    world.sql("INSERT INTO notifications (order_id, kind) VALUES (%s, 'FAILURE_ALERT')", confirmed)
    world.sql(
        "INSERT INTO saga_log (saga_id, step, status) VALUES (%s, 'SendFailureAlert', 'SENT')", confirmed
    )
    assert offenders(world.audit()) == {"notifications": {confirmed, failed}}


def test_a_notice_mailed_twice_is_flagged_though_its_table_keeps_one_row(world: World) -> None:
    # Given a confirmed order whose confirmation was mailed again on purpose: its row is removed, so
    # the next delivery claims the notice afresh
    order_id = world.confirmed()
    world.sql("DELETE FROM notifications WHERE order_id = %s", order_id)
    world.notify(order_id, NotificationKind.ORDER_CONFIRMATION)
    # Then SES was asked twice, the table holds one row, and the auditor counts the sends
    assert world_count(world, "SELECT COUNT(*) AS n FROM notifications WHERE order_id = %s", order_id) == 1
    report = world.audit()
    assert offenders(report) == {"notifications": {order_id}}
    [notices] = [r for r in report.results if r.name == "notifications"]
    assert notices.offences[0].detail == "ORDER_CONFIRMATION sent 2 times"


def test_a_notice_taken_over_from_a_dead_consumer_is_reported(world: World) -> None:
    # Given a confirmed order whose confirmation's first claimant died without recording a mail,
    # and whose next delivery took the claim over and mailed it
    order_id = world.confirmed()
    world.sql("DELETE FROM notifications WHERE order_id = %s", order_id)
    world.sql("DELETE FROM saga_log WHERE saga_id = %s AND step = 'SendOrderConfirmation'", order_id)
    stale = CLAIM_STALE_AFTER_SECONDS + 1
    claim_notice(world.database, order_id, "ORDER_CONFIRMATION", age_seconds=stale, claimant="dead")
    world.notify(order_id, NotificationKind.ORDER_CONFIRMATION)
    # Then the books agree (one mail is recorded), and the report shows the takeover
    report = world.audit()
    assert offenders(report) == {}
    assert report.reclaimed == [Reclaimed(order_id, "ORDER_CONFIRMATION", 1)]
    assert f"notice taken over: {order_id} ORDER_CONFIRMATION (1x)" in "\n".join(report.render())
    assert report.as_json()["reclaimed_notices"] == [
        {"order_id": order_id, "kind": "ORDER_CONFIRMATION", "times": 1}
    ]


def world_count(world: World, statement: str, *params: object) -> int:
    with world.database.transaction() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    assert row is not None
    return int(row["n"])


def test_a_missing_notice_on_the_notification_dlq_is_accounted_for(world: World) -> None:
    failed = world.declined()
    world.sql("DELETE FROM notifications WHERE order_id = %s", failed)
    world.sql("DELETE FROM saga_log WHERE saga_id = %s AND step = 'SendFailureAlert'", failed)
    world.sqs.send_message(
        QueueUrl=world.dlq_url, MessageBody=json.dumps({"order_id": failed, "kind": "FAILURE_ALERT"})
    )
    assert offenders(world.audit()) == {}


def test_a_saga_log_that_tells_another_story(world: World) -> None:
    confirmed, failed = world.confirmed(), world.declined()
    world.sql("DELETE FROM saga_log WHERE saga_id = %s AND step = 'ConfirmOrder'", confirmed)
    world.sql("INSERT INTO saga_log (saga_id, step, status) VALUES (%s, 'Someone', 'CONFIRMED')", failed)
    report = world.audit()
    assert offenders(report)["saga_log story"] == {confirmed, failed}
    details = {o.subject: o.detail for o in report.results[-1].offences}
    assert "ConfirmOrder CONFIRMED" in details[confirmed]
    assert "saga_log last says CONFIRMED" in details[failed]


def test_an_audit_since_a_moment_leaves_older_orders_out(world: World) -> None:
    # Given an older order with broken books, then a clean one
    older = world.needs_attention_without_record()
    with world.database.transaction() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP(3) AS now")
        row = cursor.fetchone()
    assert row is not None
    newer = world.confirmed()
    # Then an audit since that moment sees only the clean one (products are always all checked)
    report = world.audit(since=row["now"])
    assert report.ok
    assert report.orders == 1
    assert offenders(world.audit())["orders end truthfully"] == {older}
    assert newer not in report.offending_orders()


def test_what_mysql_records_as_owed_is_believed_over_the_dlq(world: World) -> None:
    # Given a NEEDS_ATTENTION order that holds money and stock, on the DLQ, whose MySQL record
    # owes only the refund
    order_id = world.needs_attention()
    world.record_on_dlq(order_id)
    world.sql("UPDATE orders SET owed_compensations = 'RefundPayment' WHERE order_id = %s", order_id)
    refund_owed = offenders(world.audit())
    world.sql(
        "UPDATE orders SET owed_compensations = 'RefundPayment,ReleaseStock' WHERE order_id = %s",
        order_id,
    )
    both_owed = world.audit()
    # Then the units it holds are a violation until the record owes their release too
    assert refund_owed == {"stock per order": {order_id}}
    assert both_owed.ok
    assert both_owed.owed[0].records == ("compensation-dlq", "mysql")


def test_the_audit_command_reads_the_gateway_its_settings_name(world: World, lambda_env: Settings) -> None:
    # Given a clean order, and a settings object naming the gateway's URL and its key's secret
    # (as a deployed environment's do), with no other way to the gateway
    order_id = world.confirmed()
    queues = {"compensation-dlq": world.dlq_url}
    # When the audit command's sources are found from those settings
    clean = audit_books(
        lambda_env, create_gateway(lambda_env), world.sfn, world.sqs, queues, deadline_seconds=3600
    )
    [charge] = world.gateway.listed("/v1/charges", {"metadata[order_id]": order_id})
    assert world.books.refund(charge["id"]).status == 200
    refunded = audit_books(
        lambda_env, create_gateway(lambda_env), world.sfn, world.sqs, queues, deadline_seconds=3600
    )
    # Then it read the gateway's ledger: clean first, then the refund made behind the saga's back
    assert (clean.ok, clean.orders) == (True, 1)
    assert offenders(refunded) == {"money per order": {order_id}, "payments row vs ledger": {order_id}}
