"""The payment gateway server of the local stack, for the tests: started on a free port with a
store of its own, reached through the adapter the functions use, and its books read back."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import urllib3

from devstack.gateway.process import PaymentGatewayServer
from order_saga.payment_gateway import HttpGateway
from tests.support.processes import free_port


@contextmanager
def gateway_server(state_dir: Path) -> Iterator[PaymentGatewayServer]:
    """A gateway server process of the test's own, stopped when the block ends."""
    server = PaymentGatewayServer(free_port(), state_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def adapter(server: PaymentGatewayServer, timeout: float = 10.0) -> HttpGateway:
    """The functions' adapter on `server`, with the key the server holds now."""
    return HttpGateway(server.url, lambda _fresh: server.api_key, timeout)


def books(gateway: HttpGateway, order_id: str) -> tuple[int, int]:
    """(charges, refunds) the gateway holds for the order: where the money is. (1, 0) is money
    kept, (1, 1) a charge refunded once, (0, 0) nothing taken; a second charge or refund of one
    order shows as a 2."""
    order = {"metadata[order_id]": order_id}
    charges = [c for c in gateway.listed("/v1/charges", order) if c["status"] == "succeeded"]
    return len(charges), len(list(gateway.listed("/v1/refunds", order)))


def gateway_faults(server: PaymentGatewayServer, *faults: dict[str, object]) -> None:
    """Faults the next matching requests meet (docs/payment-gateway.md, faults on demand)."""
    for fault in faults:
        reply = urllib3.request("POST", f"{server.url}/_control/faults", json=fault, timeout=10)
        assert reply.status == 200, reply.data


def clear_gateway_faults(server: PaymentGatewayServer) -> None:
    reply = urllib3.request("DELETE", f"{server.url}/_control/faults", timeout=10)
    assert reply.status == 200, reply.data
