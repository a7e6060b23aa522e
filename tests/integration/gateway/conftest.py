"""The local payment gateway as its own process: one for the module's tests (each test uses keys
of its own, and starts with no faults and a rate no test reaches), and fresh ones on demand."""

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from devstack.gateway.process import PaymentGatewayServer
from tests.support.gateway import GatewayClient, client_of, gateway_process


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaymentGatewayServer]:
    with gateway_process(tmp_path_factory.mktemp("gateway")) as server:
        yield server


@pytest.fixture
def client(shared_gateway: PaymentGatewayServer) -> GatewayClient:
    client = client_of(shared_gateway)
    client.control("DELETE", "faults")
    return client


@pytest.fixture
def fresh_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], PaymentGatewayServer]]:
    """Start a gateway of the test's own (an empty store), stopped when the test ends."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(gateway_process(tmp_path_factory.mktemp("gateway")))
