"""Unit tests run with the network blocked: a test that opens a socket fails."""

import pytest


@pytest.fixture(autouse=True)
def _no_network(socket_disabled: None) -> None:
    """pytest-socket's fixture: any socket() call in the test raises SocketBlockedError."""
