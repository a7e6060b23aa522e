"""Faults on demand: what the next matching requests meet, added and cleared over /_control."""

import threading

import pytest
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from tests.support.gateway import GatewayClient, new_key
from tests.support.waiting import Deadline


def test_an_unavailable_fault_answers_503_before_execution_for_its_count(client: GatewayClient) -> None:
    # Given one unavailable fault on the charges
    client.control("POST", "faults", {"kind": "unavailable", "path": "/v1/charges", "count": 1})
    key = new_key()
    # When a charge comes twice
    first, second = client.charge(key), client.charge(key)
    # Then the first met the fault (nothing done, nothing stored), the second executed; the fault is spent
    assert first.status == 503
    assert (first.json()["error"]["type"], first.json()["error"]["code"]) == ("api_error", "unavailable")
    assert second.status == 200
    assert "Idempotent-Replayed" not in second.headers
    assert client.control("GET", "faults")["data"] == []


def test_a_rate_limit_fault_answers_429_retry_after_one_second(client: GatewayClient) -> None:
    client.control("POST", "faults", {"kind": "rate_limit", "count": 1})
    key = new_key()
    limited = client.charge(key)
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "1"
    assert client.charge(key).status == 200


def test_an_in_flight_fault_answers_409_and_leaves_the_key_free(client: GatewayClient) -> None:
    client.control("POST", "faults", {"kind": "in_flight", "count": 1})
    key = new_key()
    refused = client.charge(key)
    assert refused.status == 409
    assert refused.json()["error"]["code"] == "idempotency_key_in_use"
    assert client.charge(key).status == 200


def test_a_slow_fault_does_the_work_then_answers_late(client: GatewayClient) -> None:
    # Given a slow fault of ten seconds
    client.control("POST", "faults", {"kind": "slow", "delay_ms": 10_000, "count": 1})
    key = new_key()
    # When a client gives up waiting for a charge's answer
    with pytest.raises(ReadTimeoutError):
        client.post(
            "/v1/charges", {"amount": 1250, "currency": "eur", "source": "tok_visa"}, key=key, timeout=0.3
        )
    # Then the charge was made all the same, and asking again replays it
    Deadline(10).wait_for(lambda: client.get(f"/v1/payment_intents/{key}").status == 200, "the charge")
    again = client.post("/v1/charges", {"amount": 1250, "currency": "eur", "source": "tok_visa"}, key=key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["status"] == "succeeded"


def test_a_lost_answer_fault_executes_and_stores_then_drops_the_connection(client: GatewayClient) -> None:
    client.control("POST", "faults", {"kind": "lost_answer", "path": "/v1/charges", "count": 1})
    key = new_key()
    with pytest.raises(ProtocolError):
        client.charge(key)
    again = client.charge(key)
    assert (again.status, again.headers["Idempotent-Replayed"]) == (200, "true")


def test_a_hold_fault_does_the_work_and_keeps_the_answer_until_the_faults_are_cleared(
    client: GatewayClient,
) -> None:
    # Given a hold on the next charge
    client.control("POST", "faults", {"kind": "hold", "path": "/v1/charges", "method": "POST", "count": 1})
    key = new_key()
    answers: list[int] = []
    caller = threading.Thread(target=lambda: answers.append(client.charge(key).status))
    caller.start()
    # When the charge was made (the list shows it: a GET the hold does not meet) while its caller waits
    Deadline(30).wait_for(
        lambda: client.get("/v1/charges", {"metadata[order_id]": key}).json()["data"], "the charge"
    )
    assert caller.is_alive()
    assert answers == []
    # Then clearing the faults sends the answer
    client.control("DELETE", "faults")
    caller.join(30)
    assert answers == [200]


def test_a_fault_meets_its_path_and_those_below_it_only(client: GatewayClient) -> None:
    # Given a fault on the payment intents, until cleared
    client.control("POST", "faults", {"kind": "unavailable", "path": "/v1/payment_intents"})
    key = new_key()
    # Then a charge passes, and every read of an intent meets the fault
    assert client.charge(key).status == 200
    assert [client.get(f"/v1/payment_intents/{key}").status for _ in range(2)] == [503, 503]
    # When the faults are cleared, the intent is read
    assert client.control("GET", "faults")["data"] == [{"kind": "unavailable", "path": "/v1/payment_intents"}]
    assert client.control("DELETE", "faults")["data"] == []
    assert client.get(f"/v1/payment_intents/{key}").status == 200


@pytest.mark.parametrize(
    ("fault", "param"),
    [
        ({"kind": "flood"}, "kind"),
        ({"kind": "slow"}, "delay_ms"),
        ({"kind": "unavailable", "delay_ms": 5}, "delay_ms"),
        ({"kind": "unavailable", "count": 0}, "count"),
        ({"kind": "unavailable", "path": "/health"}, "path"),
    ],
)
def test_a_fault_that_makes_no_sense_is_refused(
    client: GatewayClient, fault: dict[str, object], param: str
) -> None:
    reply = client.http.request("POST", f"{client.url}/_control/faults", json=fault)
    assert reply.status == 400
    assert reply.json()["error"]["param"] == param
    assert client.control("GET", "faults")["data"] == []
