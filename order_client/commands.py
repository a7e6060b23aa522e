"""`order-saga orders ...`: a client of the edge, as a customer's app or a shop's backend is.

The orders commands talk gRPC to the edge (ORDERS_GRPC_ADDRESS) with an access token: the one in
`--token` (ORDER_SAGA_TOKEN), or one the local issuer mints, for the customer `--user`, or for the
service `--client`. A service names the customer it acts for with `--for` (the `x-customer-id`
metadata). Output is a readable table, or JSON with `--json` for scripts.
"""

import json
import sys
import uuid
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, Protocol

import click
import grpc
from google.protobuf.json_format import MessageToDict
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from grpc_edge.channel import open_channel
from grpc_edge.convert import status_name
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from order_ops.output import json_option, render_table
from order_saga.models import OrderStatus

DEFAULT_ADDRESS = "127.0.0.1:50051"
STATUS_CHOICES = [status.value for status in OrderStatus]


def order_dict(order: pb.Order) -> dict[str, Any]:
    return MessageToDict(order, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def order_rows(orders: Sequence[pb.Order]) -> str:
    headers = ("order_id", "status", "total", "items", "created_at", "failure_reason")
    rows = [
        (
            o.order_id,
            status_name(o.status) + (" (cancel requested)" if o.cancel_requested else ""),
            f"{o.total} {o.currency}",
            ", ".join(f"{i.product_id}x{i.quantity}" for i in o.items),
            o.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
            o.failure_reason or "-",
        )
        for o in orders
    ]
    return render_table(headers, rows)


def grpc_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """A failed RPC is one line on stderr (code, message, field violations) and exit status 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
            click.echo(f"error: {code.name}: {details}", err=True)
            status = rpc_status.from_call(exc)
            for detail in status.details if status else []:
                bad_request = error_details_pb2.BadRequest()
                if detail.Unpack(bad_request):
                    for violation in bad_request.field_violations:
                        click.echo(f"  {violation.field}: {violation.description}", err=True)
            sys.exit(1)

    return wrapper


CUSTOMER_METADATA = "x-customer-id"  # the customer a service acts for


class EdgeClient:
    """The stub, the caller's token (minted only when an RPC is about to be sent) and the
    customer a service acts for."""

    def __init__(
        self, stub: orders_pb2_grpc.OrderServiceStub, token: Callable[[], str], acting_for: str | None = None
    ) -> None:
        self.stub = stub
        self._token = token
        self._acting_for = acting_for

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        bearer = ("authorization", f"Bearer {self._token()}")
        return (bearer,) if self._acting_for is None else (bearer, (CUSTOMER_METADATA, self._acting_for))


class TokenIssuer(Protocol):
    """What mints tokens for the command line (the local stack's issuer; a deployment has none)."""

    def customer_token(self, customer: str) -> str: ...

    def service_token(self, client: str) -> str: ...


pass_client = click.make_pass_decorator(EdgeClient)
# The `ctx.meta` key of the TokenIssuer, set by whoever assembles the command line.
TOKEN_ISSUER = "order_client.token_issuer"  # noqa: S105 - a key, not a secret


@click.group()
@click.option("--address", envvar="ORDERS_GRPC_ADDRESS", default=DEFAULT_ADDRESS, show_default=True)
@click.option(
    "--user", envvar="ORDER_SAGA_USER", default="demo-user", show_default=True, help="Acts as this customer."
)
@click.option("--client", help="Acts as this service (a client-credentials token), for --for.")
@click.option("--for", "acting_for", help="The customer a service acts for (x-customer-id).")
@click.option(
    "--token", "bearer", envvar="ORDER_SAGA_TOKEN", help="Use this access token instead of minting one."
)
@click.option(
    "--ca", type=click.Path(path_type=Path), envvar="ORDERS_GRPC_CA_FILE", help="TLS: CA of the edge."
)
@click.option(
    "--cert", type=click.Path(path_type=Path), envvar="ORDERS_GRPC_CERT_FILE", help="mTLS: client cert."
)
@click.option(
    "--key", type=click.Path(path_type=Path), envvar="ORDERS_GRPC_KEY_FILE", help="mTLS: client key."
)
@click.pass_context
def orders(
    ctx: click.Context,
    *,
    address: str,
    user: str,
    client: str | None,
    acting_for: str | None,
    bearer: str | None,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
) -> None:
    """Create, read, list, cancel and watch orders through the gRPC edge."""
    channel = ctx.with_resource(open_channel(address, ca_file=ca, cert_file=cert, key_file=key))
    stub = orders_pb2_grpc.OrderServiceStub(channel)
    ctx.obj = EdgeClient(stub, _token_of(ctx, bearer, user, client), acting_for)


def _token_of(ctx: click.Context, bearer: str | None, user: str, client: str | None) -> Callable[[], str]:
    """The caller's token: the one given, or one the command line's issuer mints for the service
    `client` or else the customer `user`."""
    if bearer:
        return lambda: bearer
    issuer: TokenIssuer | None = ctx.meta.get(TOKEN_ISSUER)
    if issuer is None:
        raise click.UsageError("no access token: pass --token or set ORDER_SAGA_TOKEN")
    if client is not None:
        return lambda: issuer.service_token(client)
    return lambda: issuer.customer_token(user)


def parse_item(value: str) -> pb.OrderItem:
    product_id, _, quantity = value.partition("=")
    try:
        return pb.OrderItem(product_id=product_id, quantity=int(quantity or "1"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: expected PRODUCT or PRODUCT=QUANTITY") from exc


@orders.command("create")
@click.option("--item", "items", multiple=True, required=True, help="PRODUCT=QUANTITY; repeatable.")
@click.option("--payment-token", default="tok_visa", show_default=True)
@click.option("--email", default="", help="Where the confirmation goes.")
@click.option("--idempotency-key", default=None, help="Default: a new random key.")
@json_option
@pass_client
@grpc_errors
def create_order(
    client: EdgeClient,
    *,
    items: tuple[str, ...],
    payment_token: str,
    email: str,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Place an order."""
    request = pb.CreateOrderRequest(
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        items=[parse_item(item) for item in items],
        payment_token=payment_token,
        email=email,
    )
    order = client.stub.CreateOrder(request, metadata=client.metadata, timeout=30).order
    show_orders([order], as_json)


@orders.command("get")
@click.argument("order_id")
@json_option
@pass_client
@grpc_errors
def get_order(client: EdgeClient, order_id: str, as_json: bool) -> None:
    """Show one order."""
    show_orders(
        [client.stub.GetOrder(pb.GetOrderRequest(order_id=order_id), metadata=client.metadata)], as_json
    )


@orders.command("list")
@click.option("--status", type=click.Choice(STATUS_CHOICES), default=None)
@click.option("--page-size", default=20, show_default=True)
@click.option("--page-token", default="")
@json_option
@pass_client
@grpc_errors
def list_orders(
    client: EdgeClient, status: str | None, page_size: int, page_token: str, as_json: bool
) -> None:
    """List your orders, newest first (one page; the next page's token is printed)."""
    request = pb.ListOrdersRequest(
        page_size=page_size,
        page_token=page_token,
        status=pb.OrderStatus.Value(f"ORDER_STATUS_{status}") if status else pb.ORDER_STATUS_UNSPECIFIED,
    )
    page = client.stub.ListOrders(request, metadata=client.metadata)
    if as_json:
        click.echo(
            json.dumps(
                {"orders": [order_dict(o) for o in page.orders], "next_page_token": page.next_page_token}
            )
        )
        return
    click.echo(order_rows(page.orders))
    if page.next_page_token:
        click.echo(f"next page: --page-token {page.next_page_token}")


@orders.command("cancel")
@click.argument("order_id")
@click.option("--reason", default="")
@json_option
@pass_client
@grpc_errors
def cancel_order(client: EdgeClient, order_id: str, reason: str, as_json: bool) -> None:
    """Cancel an order (PENDING: flagged for the saga; CONFIRMED: refunded and restocked)."""
    request = pb.CancelOrderRequest(order_id=order_id, reason=reason)
    show_orders([client.stub.CancelOrder(request, metadata=client.metadata)], as_json)


@orders.command("watch")
@click.argument("order_id")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for a terminal status.")
@json_option
@pass_client
@grpc_errors
def watch_order(client: EdgeClient, order_id: str, timeout: float, as_json: bool) -> None:
    """Print every status change of an order until it is terminal."""
    stream = client.stub.WatchOrder(
        pb.WatchOrderRequest(order_id=order_id), metadata=client.metadata, timeout=timeout
    )
    for order in stream:
        if as_json:
            click.echo(json.dumps(order_dict(order)))
        else:
            reason = f" ({order.failure_reason})" if order.failure_reason else ""
            click.echo(f"{order.updated_at.ToDatetime():%H:%M:%S}  {status_name(order.status)}{reason}")


def show_orders(found: Sequence[pb.Order], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(order_dict(found[0]) if len(found) == 1 else [order_dict(o) for o in found]))
    else:
        click.echo(order_rows(found))
