"""The migration waits for a database that answers late (RDS Proxy before its target is
AVAILABLE), on the local MariaDB behind a port that starts answering after a delay."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from order_saga.db import Credentials
from order_saga.errors import ConfigurationError, DatabaseUnavailable
from order_saga.migrate import wait_for_server
from order_saga.settings import Settings
from tests.support.processes import free_port


def _copy(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, target: tuple[str, int]) -> None:
    with client, socket.create_connection(target) as upstream:
        back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
        back.start()
        _copy(client, upstream)
        back.join()


@contextmanager
def late_listener(target: tuple[str, int], delay: float) -> Iterator[int]:
    """A loopback port that refuses connections for `delay` seconds, then relays them to `target`."""
    port = free_port()
    stop = threading.Event()

    def serve() -> None:
        if stop.wait(delay):
            return
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=_relay, args=(client, target), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join()


def credentials(settings: Settings, port: int) -> Credentials:
    return Credentials(
        "127.0.0.1", port, settings.mysql_user, settings.mysql_password, settings.mysql_database
    )


def test_the_migration_waits_for_a_server_that_answers_late(settings: Settings) -> None:
    # Given a database that refuses connections for the first 1.5 s
    with late_listener((settings.mysql_host, settings.mysql_port), delay=1.5) as port:
        started = time.monotonic()
        # When the migration waits for it, trying every 0.5 s
        attempts = wait_for_server(credentials(settings, port), budget=10, pause=0.5)
    # Then it connects once the server answers, after several refused attempts
    assert attempts >= 3
    assert 1.5 <= time.monotonic() - started < 10


def test_the_wait_is_bounded(settings: Settings) -> None:
    with late_listener((settings.mysql_host, settings.mysql_port), delay=60) as port:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match=f"127.0.0.1:{port}"):
            wait_for_server(credentials(settings, port), budget=1.0, pause=0.3)
    assert time.monotonic() - started < 3


def never(seconds: float) -> None:
    raise AssertionError(f"waited {seconds} s for an error no wait cures")


def test_a_refused_login_is_not_waited_out(settings: Settings) -> None:
    creds = Credentials(settings.mysql_host, settings.mysql_port, "nobody", "wrong", settings.mysql_database)
    with pytest.raises(ConfigurationError, match="rejected user 'nobody'"):
        wait_for_server(creds, budget=30, pause=5, sleep=never)
