"""The operator's commands on the local stack: executions list|show, dlq list|redrive, and the
wiring they rely on (everything created from the function definitions and the ASL files).

The commands run as an operator types them, in a process of their own, against the tier's stack.
The DLQ tests start their executions directly: the fault that fills the DLQ must be in place
before the first step runs.
"""

import json
import re

from devstack.wiring import DB_SECRET, queue_name
from order_ops.executions import ExecutionPath
from order_saga.functions import FUNCTIONS, function, substitution_names
from order_saga.manifest import LOCAL_ENVIRONMENT, NOTIFICATION_DLQ, NOTIFICATION_QUEUE, RELEASE_ALIAS
from tests.support.stack import Customer, LocalStack, transient_retries


def stuck_on_the_dlq(stack: LocalStack) -> tuple[str, ExecutionPath]:
    """A declined order whose refund failed once (an error no Retry covers) and that could not
    even be flagged: it sits PENDING, with its context on the compensation DLQ."""
    order_id = stack.new_order({"sku-1": 1}, token="tok_chargeDeclined")
    stack.fault("RefundPayment", "error", order_id, error_type="InjectedFault", times=1)
    stack.fault("MarkNeedsAttention", "error", order_id, error_type="InjectedFault")
    return order_id, stack.run(order_id)


def redriven(order_id: str, end: str, notice: str) -> list[str]:
    """The report of a re-drive whose compensation completed."""
    steps = ["RefundPayment: ok", "ReleaseStock: ok", f"{end}: ok", f"{notice} queued", "message deleted"]
    return [f"{order_id}:", *(f"  {step}" for step in steps)]


def test_everything_is_wired_from_the_function_definitions(stack: LocalStack) -> None:
    for spec in FUNCTIONS:
        config = stack.lam.get_function_configuration(FunctionName=spec.deployed_name(LOCAL_ENVIRONMENT))
        assert (config["Handler"], config["Timeout"], config["MemorySize"]) == (
            spec.handler,
            spec.timeout_seconds,
            spec.memory_mb,
        )
        env = config["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == spec.service
        assert "MYSQL_PASSWORD" not in env  # credentials come from the secret, as in AWS
        assert f":secret:{DB_SECRET}-" in env["MYSQL_SECRET_ARN"]
    secret = json.loads(stack.client("secretsmanager").get_secret_value(SecretId=DB_SECRET)["SecretString"])
    assert set(secret) == {"engine", "host", "port", "username", "password", "dbname"}
    assert secret["dbname"] == stack.database.credentials.database
    # The notification queue feeds SendNotification and sends poison messages to its DLQ
    queue_url = stack.sqs.get_queue_url(QueueName=queue_name(NOTIFICATION_QUEUE))["QueueUrl"]
    attributes = stack.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{queue_name(NOTIFICATION_DLQ)}")
    [mapping] = stack.lam.list_event_source_mappings(
        FunctionName=function("SendNotification").deployed_name(LOCAL_ENVIRONMENT)
    )["EventSourceMappings"]
    assert mapping["EventSourceArn"] == attributes["QueueArn"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    identities = stack.client("ses").list_identities()["Identities"]
    assert stack.aws.email_sender in identities
    # The aliases route to state machine versions that run the ASL files with every substitution
    # replaced, calling published function versions (as CDK's substitutions do)
    for arn in (stack.saga_arn, stack.cancellation_arn):
        assert arn.endswith(f":{RELEASE_ALIAS}")
        definition = stack.sfn.describe_state_machine(stateMachineArn=stack.live_version(arn))["definition"]
        assert "${" not in definition
        assert all(name not in definition for name in substitution_names())
        called = re.findall(r'"FunctionName":\s*"([^"]+)"', definition)
        version = r"arn:aws:lambda:[^:]+:\d+:function:OrderSaga-local-\w+:\d+"
        assert called
        assert [arn for arn in called if not re.fullmatch(version, arn)] == []
    # and the stack's env file tells every tool where they are
    env_file = stack.stack_env()
    assert env_file["AWS_ENDPOINT_URL"] == stack.aws.endpoint_url
    assert env_file["ORDER_SAGA_STATE_MACHINE_ARN"] == stack.saga_arn
    assert env_file["ORDER_CANCELLATION_STATE_MACHINE_ARN"] == stack.cancellation_arn
    assert env_file["COMPENSATION_DLQ_URL"] == stack.dlq_url


def test_aws_up_on_a_running_stack_updates_in_place(stack: LocalStack, customer: Customer) -> None:
    before = stack.lam.list_event_source_mappings()["EventSourceMappings"]
    code, output = stack.operator("aws", "up")
    assert code == 0, output
    assert output.splitlines()[:3] == [
        f"gateway: already running on 127.0.0.1:{stack.gateway_server.port}",
        f"issuer: already running on 127.0.0.1:{stack.env['DEVSTACK_ISSUER_PORT']}",
        f"moto: already running on 127.0.0.1:{stack.aws.moto_port}",
    ]
    assert stack.lam.list_event_source_mappings()["EventSourceMappings"] == before
    assert len(stack.lam.list_functions()["Functions"]) == len(FUNCTIONS)
    assert len(stack.sfn.list_state_machines()["stateMachines"]) == 2
    order_id = customer.create({"sku-1": 1}).order_id
    assert stack.finish(order_id).status == "SUCCEEDED"


def test_executions_list_and_show_tell_an_orders_story(stack: LocalStack, customer: Customer) -> None:
    order_id = customer.create({"sku-1": 1}, token="tok_unavailable_1").order_id
    path = stack.finish(order_id)
    assert path.status == "SUCCEEDED"
    # 5 states and the retry of the gateway's unavailability (and of any transient error)
    transitions = 6 + transient_retries(path, "PaymentGatewayUnavailable")
    [payment] = [visit for visit in path.visits if visit.name == "ProcessPayment"]
    code, listing = stack.operator("executions", "list", "--limit", "5")
    assert code == 0
    # one line per execution: its start, the machine's role (as `show` names it), the order, status
    [row] = [line.split() for line in listing.splitlines() if order_id in line]
    assert row[2:5] == ["OrderSaga", order_id, "SUCCEEDED"]
    code, shown = stack.operator("executions", "show", order_id)
    assert code == 0
    lines = shown.splitlines()
    assert lines[0].startswith(f"OrderSaga / {order_id}: SUCCEEDED in ")
    assert lines[0].endswith(f", {transitions} state transitions")
    assert "ProcessPayment" in lines[2]
    assert f"{payment.retries} retr{'y' if payment.retries == 1 else 'ies'}" in lines[2]
    assert any(line.strip().startswith("! PaymentGatewayUnavailable") for line in lines[3:]), shown
    assert [line.split()[1] for line in lines if line.startswith("  -> ")] == [
        "ProcessPayment",
        "ReserveStock",
        "ConfirmOrder",
        "SendOrderConfirmation",
        "OrderConfirmed",
    ]
    code, out = stack.operator("executions", "show", "no-such-order")
    assert (code, out.startswith("error: ")) == (1, True)


def test_direct_start_dlq_list_and_redrive_complete_a_stuck_compensation(stack: LocalStack) -> None:
    # Given a declined order whose refund failed (an error no Retry covers) and that could not
    # even be flagged: it sits PENDING, with its context on the compensation DLQ
    order_id, path = stuck_on_the_dlq(stack)
    assert path.error == "CompensationFailed"
    assert stack.order(order_id)["status"] == "PENDING"
    code, listed = stack.operator("dlq", "list")
    assert code == 0
    assert f"{order_id}  OrderSaga-local-OrderSaga  InjectedFault" in listed
    # When the operator re-drives it (the database is back)
    code, report = stack.operator("dlq", "redrive", "--order-id", order_id)
    # Then the compensation completes, the customer is told, and the message is gone
    assert code == 0, report
    assert report.splitlines() == redriven(order_id, "MarkOrderFailed", "FAILURE_ALERT")
    assert stack.order(order_id)["status"] == "FAILED"
    assert stack.books(order_id) == (0, 0)  # declined: never charged
    assert stack.stock()["sku-1"] == (20, 0)
    [mail] = stack.wait_for_emails(order_id)
    assert mail["subject"] == f"We could not complete your order {order_id}"
    assert stack.dlq_messages() == []


def test_direct_start_a_redrive_that_fails_again_keeps_the_message(stack: LocalStack) -> None:
    order_id, _ = stuck_on_the_dlq(stack)
    stack.fault("ReleaseStock", "error", order_id, error_type="InjectedFault", times=1)
    code, report = stack.operator("dlq", "redrive")
    assert code == 1, report  # a kept message is a failure the operator's script must see
    lines = report.splitlines()
    assert lines[:2] == [f"{order_id}:", "  RefundPayment: ok"]
    assert lines[2].startswith("  ReleaseStock: failed again: ")
    assert "InjectedFault" in lines[2]
    assert lines[3:] == [
        "  message kept on the queue",
        "1 message(s) kept on the queue: their compensation failed again",
    ]
    assert [body["order_id"] for body in stack.dlq_messages()] == [order_id]
    assert stack.order(order_id)["status"] == "PENDING"


def test_direct_start_redriving_an_order_flagged_needs_attention_ends_it_failed(stack: LocalStack) -> None:
    order_id = stack.new_order({"sku-1": 1}, token="tok_chargeDeclined")
    stack.fault("RefundPayment", "error", order_id, error_type="InjectedFault", times=1)
    stack.run(order_id)
    assert stack.order(order_id)["status"] == "NEEDS_ATTENTION"
    code, report = stack.operator("dlq", "redrive", "--order-id", order_id)
    assert code == 0, report
    assert report.splitlines() == redriven(order_id, "MarkOrderFailed", "FAILURE_ALERT")
    assert stack.order(order_id)["status"] == "FAILED"
    assert stack.dlq_messages() == []


def test_a_cancellation_redriven_from_the_dlq_ends_the_order_cancelled(
    stack: LocalStack, customer: Customer
) -> None:
    # Given a confirmed order whose cancellation could not refund: flagged, its context on the DLQ
    order_id = customer.create({"sku-1": 1}).order_id
    assert stack.finish(order_id).status == "SUCCEEDED"
    stack.fault("RefundPayment", "error", order_id, error_type="InjectedFault", times=1)
    customer.cancel(order_id)
    assert stack.finish(order_id, cancellation=True).error == "CompensationFailed"
    assert stack.order(order_id)["status"] == "NEEDS_ATTENTION"
    code, listed = stack.operator("dlq", "list")
    assert code == 0, listed
    assert f"{order_id}  OrderSaga-local-OrderCancellation  InjectedFault" in listed
    # When the operator re-drives it
    code, report = stack.operator("dlq", "redrive", "--order-id", order_id)
    # Then the cancellation completes: refunded, restocked, CANCELLED, the customer told
    assert code == 0, report
    assert report.splitlines() == redriven(order_id, "MarkOrderCancelled", "CANCELLATION_NOTICE")
    assert stack.order(order_id)["status"] == "CANCELLED"
    assert stack.payment(order_id)["status"] == "REFUNDED"  # type: ignore[index]
    assert stack.books(order_id) == (1, 1)
    assert stack.stock()["sku-1"] == (20, 0)
    assert stack.dlq_messages() == []
    mails = stack.wait_for_emails(order_id, count=2)  # the confirmation, then the cancellation
    assert sorted(mail["subject"] for mail in mails) == [
        f"Your order {order_id} is cancelled",
        f"Your order {order_id} is confirmed",
    ]


def test_direct_start_a_message_whose_order_is_already_settled_is_deleted_and_nothing_runs(
    stack: LocalStack,
) -> None:
    # Given a declined order whose refund kept failing, flagged with its context on the DLQ, then
    # resolved by an operator (FAILED, the customer told, nothing owed) while the message stayed
    order_id = stack.new_order({"sku-1": 1}, token="tok_chargeDeclined")
    stack.fault("RefundPayment", "error", order_id, error_type="InjectedFault", times=1)
    stack.run(order_id)
    assert stack.order(order_id)["status"] == "NEEDS_ATTENTION"
    code, report = stack.operator("attention", "resolve", order_id)
    assert code == 0, report
    assert stack.order(order_id)["status"] == "FAILED"
    stack.wait_for_emails(order_id)
    # When the operator re-drives the DLQ
    code, report = stack.operator("dlq", "redrive", "--order-id", order_id)
    # Then the message goes without running a step: the order stays FAILED, with one alert
    assert code == 0, report
    assert report.splitlines() == [f"{order_id}:", "  already FAILED, owing nothing", "  message deleted"]
    assert stack.order(order_id)["status"] == "FAILED"
    assert stack.dlq_messages() == []
    assert len(stack.emails_about(order_id)) == 1
