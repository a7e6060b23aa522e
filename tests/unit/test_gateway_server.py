"""The local payment gateway's parts that need no server: who may use the control endpoints, and
how the stack finds the gateway."""

import pytest

from devstack.gateway.control import require_loopback
from devstack.gateway.errors import LoopbackOnly, error_answer
from devstack.gateway.process import payment_gateway_server


@pytest.mark.parametrize("client", ["127.0.0.1", "127.0.0.2", "::1"])
def test_a_loopback_client_may_use_the_control_endpoints(client: str) -> None:
    require_loopback(client)


@pytest.mark.parametrize("client", ["10.0.0.7", "192.168.1.20", "2001:db8::1"])
def test_a_client_from_another_machine_is_refused_the_control_endpoints(client: str) -> None:
    with pytest.raises(LoopbackOnly) as refused:
        require_loopback(client)
    assert error_answer(refused.value).status == 403


def test_the_stack_finds_the_gateway_by_its_port_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVSTACK_GATEWAY_PORT", "35999")
    server = payment_gateway_server()
    assert (server.name, server.port, server.port_setting) == ("gateway", 35999, "DEVSTACK_GATEWAY_PORT")
    assert server.env() == {"PAYMENT_GATEWAY_URL": "http://127.0.0.1:35999"}


def test_the_gateway_listens_on_35100_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVSTACK_GATEWAY_PORT", raising=False)
    assert payment_gateway_server().port == 35100
