"""No client-visible text carries internals, on every error path of the edge.

A status message, its google.rpc details, an order's failure_reason and reason code never name a
host, a port, an ARN, an account id, SQL, a setting, or a gateway or Lambda payload. Operators
find the detail in the logs, saga_log and the DLQ.
"""

import re
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from tests.support.clock import Clock
from tests.support.edge import ALL_SCOPES, Edge, EdgeFactory, make_token
from tests.support.processes import free_port

LEAK = re.compile(
    r"\b\d{1,3}(\.\d{1,3}){3}\b|localhost|127\.0\.0\.1|:\d{2,5}\b|arn:|(?<![\w-])\d{12}(?![\w-])"
    r"|\b(SELECT|INSERT|UPDATE|DELETE)\b|errorMessage|errorType|Traceback|MYSQL_|REDIS_|pymysql|botocore",
    re.IGNORECASE,
)


def client_text(error: grpc.RpcError) -> str:
    """Everything a client can read from a failed call: the message and every detail."""
    texts = [str(error.details())]
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo, error_details_pb2.ErrorInfo):
            message = kind()
            if detail.Unpack(message):
                texts.append(str(message))
    return "\n".join(texts)


def failing(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


def insert_order(edge: Edge, status: str, user: str = "alice") -> str:
    order_id = str(uuid.uuid4())
    edge.sql(
        "INSERT INTO orders (order_id, user_id, idempotency_key, request_hash, total, currency,"
        " payment_token, status) VALUES (%s, %s, %s, %s, 1.20, 'EUR', 'tok_visa', %s)",
        (order_id, user, order_id, "0" * 64, status),
    )
    edge.sql("INSERT INTO order_items VALUES (%s, 'pen', 1, 1.20)", (order_id,))
    return order_id


def test_no_error_path_of_the_edge_shows_internals(edge_factory: EdgeFactory, shop: dict[str, Any]) -> None:
    edge = edge_factory(rate_limit_per_minute=1000)
    stub, auth = edge.stub, edge.auth()
    failed = insert_order(edge, "FAILED")

    def token(sub: str, scopes: tuple[str, ...] = ALL_SCOPES) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {make_token(edge.issuer, sub, scopes)}"),)

    def create(**fields: Any) -> pb.CreateOrderRequest:
        body = {
            "idempotency_key": "k",
            "payment_token": "tok_visa",
            "items": [pb.OrderItem(product_id="pen", quantity=1)],
        }
        return pb.CreateOrderRequest(**(body | fields))

    key = str(uuid.uuid4())
    stub.CreateOrder(create(idempotency_key=key), metadata=auth)
    paths: dict[grpc.StatusCode, list[Callable[[], Any]]] = {
        grpc.StatusCode.UNAUTHENTICATED: [
            lambda: stub.ListOrders(pb.ListOrdersRequest()),
            lambda: stub.ListOrders(pb.ListOrdersRequest(), metadata=(("authorization", "Bearer x.y.z"),)),
            lambda: stub.ListOrders(pb.ListOrdersRequest(), metadata=token("")),
            lambda: stub.ListOrders(pb.ListOrdersRequest(), metadata=token("u" * 129)),
        ],
        grpc.StatusCode.PERMISSION_DENIED: [
            lambda: stub.CreateOrder(create(), metadata=token("alice", ("orders:read",))),
        ],
        grpc.StatusCode.INVALID_ARGUMENT: [
            lambda: stub.GetOrder(pb.GetOrderRequest(order_id="nope"), metadata=auth),
            lambda: stub.CreateOrder(create(items=[]), metadata=auth),
            lambda: stub.ListOrders(pb.ListOrdersRequest(page_token="garbage"), metadata=auth),
        ],
        grpc.StatusCode.NOT_FOUND: [
            lambda: stub.GetOrder(pb.GetOrderRequest(order_id=str(uuid.uuid4())), metadata=auth),
        ],
        grpc.StatusCode.FAILED_PRECONDITION: [
            lambda: stub.CreateOrder(
                create(items=[pb.OrderItem(product_id="unicorn", quantity=1)]), metadata=auth
            ),
            lambda: stub.CreateOrder(
                create(items=[pb.OrderItem(product_id="lamp", quantity=99)]), metadata=auth
            ),
            lambda: stub.CancelOrder(pb.CancelOrderRequest(order_id=failed), metadata=auth),
        ],
        grpc.StatusCode.ALREADY_EXISTS: [
            lambda: stub.CreateOrder(create(idempotency_key=key, payment_token="tok_other"), metadata=auth),
        ],
    }
    # one request a minute, on a clock held inside one minute: no real minute ends between the calls
    limited = edge_factory(rate_limit_per_minute=1, clock=Clock(1_700_000_040))
    limited.stub.ListOrders(pb.ListOrdersRequest(), metadata=limited.auth("carol"))
    paths[grpc.StatusCode.RESOURCE_EXHAUSTED] = [
        lambda: limited.stub.ListOrders(pb.ListOrdersRequest(), metadata=limited.auth("carol"))
    ]
    database_down = edge_factory(mysql_port=free_port(), mysql_connect_timeout=1)
    workflow_down = edge_factory(
        order_cancellation_state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:Gone"
    )
    confirmed = insert_order(edge, "CONFIRMED")
    paths[grpc.StatusCode.UNAVAILABLE] = [
        lambda: database_down.stub.GetOrder(
            pb.GetOrderRequest(order_id=failed), metadata=database_down.auth()
        ),
        lambda: workflow_down.stub.CancelOrder(
            pb.CancelOrderRequest(order_id=confirmed), metadata=workflow_down.auth()
        ),
    ]
    for code, calls in paths.items():
        for call in calls:
            error = failing(call)
            # Then each path answers its code, and nothing a client reads names an internal
            assert error.code() == code, client_text(error)
            assert not LEAK.search(client_text(error)), client_text(error)


def test_an_order_shows_a_sentence_and_a_code_and_no_execution_arn(edge: Edge, shop: dict[str, Any]) -> None:
    # Given an order the saga failed (its raw error is in saga_log only)
    order = edge.create([("pen", 1)])
    edge.sql(
        "UPDATE orders SET status = 'FAILED', failure_reason = 'Your card was declined.',"
        " reason_code = 'PAYMENT_DECLINED' WHERE order_id = %s",
        (order.order_id,),
    )
    # When the customer reads it
    shown = edge.stub.GetOrder(pb.GetOrderRequest(order_id=order.order_id), metadata=edge.auth())
    # Then the sentence and the code are there, and the execution's ARN (with the account id) is not
    assert (shown.failure_reason, shown.reason_code) == ("Your card was declined.", "PAYMENT_DECLINED")
    assert edge.sql("SELECT execution_arn FROM orders WHERE order_id = %s", (order.order_id,))[0][
        "execution_arn"
    ]
    assert shown.execution_arn == ""
    assert not LEAK.search(str(shown))
