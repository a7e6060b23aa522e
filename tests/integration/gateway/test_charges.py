"""Charges and idempotency on the local payment gateway, over HTTP as the saga's adapter calls it."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3
from urllib3.exceptions import ProtocolError

from tests.support.gateway import GatewayClient, charge_body, new_key
from tests.support.waiting import Deadline


def charges_of(client: GatewayClient, order_id: str) -> list[dict[str, object]]:
    reply = client.get("/v1/charges", {"metadata[order_id]": order_id})
    assert reply.status == 200, reply.data
    return list(reply.json()["data"])


def test_a_charge_succeeds_and_names_its_intent(client: GatewayClient) -> None:
    # Given a new intent key
    key = new_key()
    # When the card is charged under it
    reply = client.charge(key, amount=1250)
    # Then the charge succeeded, and the intent and the charge can be read back
    charge = reply.json()
    assert reply.status == 200
    assert charge["id"].startswith("ch_")
    assert {name: charge[name] for name in ("object", "amount", "currency", "status", "payment_intent")} == {
        "object": "charge",
        "amount": 1250,
        "currency": "eur",
        "status": "succeeded",
        "payment_intent": key,
    }
    assert (charge["amount_refunded"], charge["refunded"], charge["metadata"]) == (
        0,
        False,
        {"order_id": key},
    )
    assert "Idempotent-Replayed" not in reply.headers
    assert client.get(f"/v1/charges/{charge['id']}").json() == charge
    assert client.get(f"/v1/payment_intents/{key}").json() == {
        "id": key,
        "object": "payment_intent",
        "status": "succeeded",
        "charge": charge["id"],
    }


def test_the_same_charge_again_replays_the_answer_and_charges_once(client: GatewayClient) -> None:
    # Given a charge made under a key
    key = new_key()
    first = client.charge(key)
    # When the same request is sent again
    again = client.charge(key)
    # Then the stored answer comes back, marked as replayed, and there is one charge
    assert (again.status, again.json()) == (first.status, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(charges_of(client, key)) == 1


def test_a_key_reused_with_another_body_or_path_is_refused(client: GatewayClient) -> None:
    # Given a charge made under a key
    key = new_key()
    charge = client.charge(key, amount=1250).json()
    # When the key comes again with another amount, or on another path
    other_body = client.charge(key, amount=999)
    other_path = client.post("/v1/refunds", {"charge": charge["id"]}, key=key)
    # Then both are refused as a reused key, and nothing more was charged or refunded
    for reply in (other_body, other_path):
        assert reply.status == 400
        assert reply.json()["error"]["type"] == "idempotency_error"
        assert reply.json()["error"]["code"] == "idempotency_key_reused"
    assert [item["amount"] for item in charges_of(client, key)] == [1250]
    assert client.get(f"/v1/charges/{charge['id']}").json()["amount_refunded"] == 0


def test_a_post_without_a_usable_idempotency_key_is_refused(client: GatewayClient) -> None:
    # When a charge comes without a key, or with one of 256 characters
    missing = client.post("/v1/charges", charge_body("no-key"), key=None)
    too_long = client.post("/v1/charges", charge_body("long-key"), key="k" * 256)
    # Then each is a 400 naming what is wrong, and nothing was charged
    assert missing.status == 400
    assert missing.json()["error"]["code"] == "idempotency_key_missing"
    assert too_long.status == 400
    assert too_long.json()["error"]["param"] == "Idempotency-Key"
    assert charges_of(client, "no-key") == charges_of(client, "long-key") == []


def test_an_invalid_charge_is_answered_400_and_that_answer_is_replayed(client: GatewayClient) -> None:
    # Given a charge without an amount
    key = new_key()
    body = {"currency": "eur", "source": "tok_visa"}
    first = client.post("/v1/charges", body, key=key)
    # When it is sent again
    again = client.post("/v1/charges", body, key=key)
    # Then both answers name the missing parameter; the second is the stored one
    assert first.status == again.status == 400
    assert first.json()["error"] == {
        "type": "invalid_request_error",
        "code": "parameter_missing",
        "message": "missing required parameter: amount",
        "param": "amount",
    }
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize(
    ("token", "decline_code"),
    [
        ("tok_chargeDeclined", "generic_decline"),
        ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("tok_chargeDeclinedExpiredCard", "expired_card"),
        ("tok_somethingElse", "invalid_token"),
    ],
)
def test_a_declined_card_is_402_with_its_decline_code_and_a_failed_charge(
    client: GatewayClient, token: str, decline_code: str
) -> None:
    # When a card with a declining token is charged
    key = new_key()
    reply = client.charge(key, source=token)
    # Then 402 names the decline and the failed charge, which is recorded; the intent awaits payment
    error = reply.json()["error"]
    assert reply.status == 402
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        decline_code,
    )
    failed = client.get(f"/v1/charges/{error['charge']}").json()
    assert (failed["status"], failed["payment_intent"]) == ("failed", key)
    assert client.get(f"/v1/payment_intents/{key}").json()["status"] == "requires_payment"


def test_an_unavailable_token_fails_its_first_attempts_unstored_then_succeeds(client: GatewayClient) -> None:
    # Given the token that makes the gateway unavailable twice under its key
    key = new_key()
    # When the same charge is sent four times
    replies = [client.charge(key, source="tok_unavailable_2") for _ in range(4)]
    # Then 503 twice (not stored: the third attempt executes), 200, then the 200 replayed
    assert [reply.status for reply in replies] == [503, 503, 200, 200]
    assert replies[0].json()["error"]["type"] == "api_error"
    assert "Idempotent-Replayed" not in replies[2].headers
    assert replies[3].headers["Idempotent-Replayed"] == "true"
    assert len(charges_of(client, key)) == 1


def test_a_lost_answer_drops_the_connection_on_every_attempt_after_charging(client: GatewayClient) -> None:
    # When the token that loses its answer is charged, twice
    key = new_key()
    for _ in range(2):
        with pytest.raises(ProtocolError):
            client.charge(key, source="tok_lostAnswer")
    # Then no answer came, yet the intent was charged once
    intent = client.get(f"/v1/payment_intents/{key}").json()
    assert intent["status"] == "succeeded"
    assert [charge["id"] for charge in charges_of(client, key)] == [intent["charge"]]


def test_a_key_in_flight_is_refused_409_until_its_request_is_done(client: GatewayClient) -> None:
    # Given a slow charge holding its key in flight
    key = new_key()
    replies: list[urllib3.BaseHTTPResponse] = []
    slow = threading.Thread(target=lambda: replies.append(client.charge(key, source="tok_slow_3000")))
    slow.start()
    Deadline(10).wait_for(lambda: key in client.in_flight(), f"{key} to be in flight")
    # When the same charge comes meanwhile
    meanwhile = client.charge(key, source="tok_slow_3000")
    slow.join()
    # Then it is refused (nothing done); once the first is done, the request replays its answer
    assert meanwhile.status == 409
    assert meanwhile.json()["error"]["code"] == "idempotency_key_in_use"
    assert replies[0].status == 200
    after = client.charge(key, source="tok_slow_3000")
    assert after.headers["Idempotent-Replayed"] == "true"
    assert after.json() == replies[0].json()
    assert key not in client.in_flight()


def test_the_same_charge_from_many_threads_at_once_charges_once(client: GatewayClient) -> None:
    # Given sixteen clients about to send the same charge
    key = new_key()
    start = threading.Barrier(16)

    def send() -> urllib3.BaseHTTPResponse:
        start.wait()
        return client.charge(key)

    # When they send it at the same moment
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda _: send(), range(16)))
    # Then one charge was made; every other client got it replayed or was told the key is in use
    charges = charges_of(client, key)
    assert len(charges) == 1
    assert {reply.status for reply in replies} <= {200, 409}
    assert {reply.json()["id"] for reply in replies if reply.status == 200} == {charges[0]["id"]}
