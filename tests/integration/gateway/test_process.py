"""The local payment gateway as a process: its store outlives a restart and a crash, its key file
is its owner's only, it logs one line a request without secrets, and SIGTERM stops it."""

import os
import signal
import stat
import threading
from collections.abc import Callable

from urllib3.exceptions import ProtocolError

from devstack.gateway.process import PaymentGatewayServer
from tests.support.gateway import client_of, new_key
from tests.support.waiting import Deadline


def test_a_restart_keeps_charges_refunds_keys_idempotency_records_and_attempts(
    fresh_gateway: Callable[[], PaymentGatewayServer],
) -> None:
    # Given a charge, its refund, a rolled key and an unavailable token tried once
    server = fresh_gateway()
    client = client_of(server)
    first_key = server.api_key
    charge_key, flaky_key = new_key(), new_key()
    charge = client.charge(charge_key).json()
    refund = client.refund(charge["id"]).json()
    rolled = client.post("/v1/api_keys/roll", {"grace_seconds": 3600}, key=new_key("roll")).json()["key"]
    assert client.charge(flaky_key, source="tok_unavailable_2").status == 503
    # When the server stops and starts again
    assert server.stop() == "gateway: stopped"
    server.start()
    client = client_of(server)
    # Then both keys work, the objects are there, the stored answers replay, the attempt counts
    assert server.api_key == client.api_key == rolled
    assert client.get(f"/v1/charges/{charge['id']}", api_key=first_key).json()["refunded"] is True
    assert client.get(f"/v1/refunds/{refund['id']}").json() == refund
    replayed = client.charge(charge_key)
    assert (replayed.headers["Idempotent-Replayed"], replayed.json()["id"]) == ("true", charge["id"])
    assert client.refund(charge["id"]).json() == refund
    assert [client.charge(flaky_key, source="tok_unavailable_2").status for _ in range(2)] == [503, 200]


def test_a_crash_while_a_key_is_in_flight_leaves_the_key_free_and_nothing_charged(
    fresh_gateway: Callable[[], PaymentGatewayServer],
) -> None:
    # Given a slow charge in flight
    server = fresh_gateway()
    client = client_of(server)
    key = new_key()
    dropped: list[ProtocolError] = []

    def send() -> None:
        try:
            client.charge(key, source="tok_slow_60000")
        except ProtocolError as error:
            dropped.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    Deadline(10).wait_for(lambda: key in client.in_flight(), f"{key} to be in flight")
    # When the server is killed, then started again
    pid = server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # our child: gone, with its port, once this returns
    sender.join()
    assert len(dropped) == 1
    server.start()
    client = client_of(server)
    # Then the key is no longer in flight, nothing was charged, and the charge can be made
    assert client.in_flight() == []
    assert client.get(f"/v1/payment_intents/{key}").status == 404
    reply = client.charge(key)
    assert (reply.status, "Idempotent-Replayed" in reply.headers) == (200, False)


def test_the_key_file_is_private_and_the_log_has_a_line_a_request_without_secrets(
    fresh_gateway: Callable[[], PaymentGatewayServer],
) -> None:
    # Given a gateway that served a charge and a request with a wrong key
    server = fresh_gateway()
    client = client_of(server)
    key = new_key()
    client.charge(key)
    client.get("/v1/charges", api_key="sk_test_wrong")
    # When it stops on SIGTERM
    assert server.stop() == "gateway: stopped"
    # Then its key file is its owner's only, and its log names each request but no key
    assert stat.S_IMODE((server.home / "api-key").stat().st_mode) == 0o600
    log = server.logfile.read_text()
    assert f"POST /v1/charges 200 {key}\n" in log
    assert "GET /v1/charges 401 -\n" in log
    assert server.api_key not in log
    assert "sk_test_wrong" not in log
