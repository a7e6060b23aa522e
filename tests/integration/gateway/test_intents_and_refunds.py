"""Cancelling payment intents and refunding charges on the local payment gateway."""

from tests.support.gateway import GatewayClient, new_key


def cancel(client: GatewayClient, key: str) -> tuple[int, dict[str, object]]:
    reply = client.post(f"/v1/payment_intents/{key}/cancel", {}, key=f"cancel-{key}")
    return reply.status, reply.json()


def test_cancelling_a_charged_intent_is_refused_naming_its_charge(client: GatewayClient) -> None:
    # Given an intent with a successful charge
    key = new_key()
    charge = client.charge(key).json()
    # When it is cancelled
    status, answer = cancel(client, key)
    # Then the cancel is refused with the intent and its charge (to be refunded instead)
    assert status == 400
    assert answer["error"] == {
        "type": "invalid_request_error",
        "code": "payment_intent_unexpected_state",
        "message": "the payment intent has a successful charge; refund it instead",
        "payment_intent": {
            "id": key,
            "object": "payment_intent",
            "status": "succeeded",
            "charge": charge["id"],
        },
    }


def test_a_cancelled_intent_declines_a_later_charge_without_charging(client: GatewayClient) -> None:
    # Given an intent cancelled before any charge (a refund that overtook its charge)
    key = new_key()
    status, intent = cancel(client, key)
    assert (status, intent) == (
        200,
        {"id": key, "object": "payment_intent", "status": "canceled", "charge": None},
    )
    # When the charge arrives under the key
    reply = client.charge(key)
    # Then it is declined as cancelled, and no charge was made
    assert reply.status == 402
    assert reply.json()["error"]["decline_code"] == "intent_canceled"
    assert reply.json()["error"]["charge"] is None
    assert client.get("/v1/charges", {"metadata[order_id]": key}).json()["data"] == []


def test_an_intent_whose_charge_was_declined_can_be_cancelled(client: GatewayClient) -> None:
    # Given an intent whose only charge was declined
    key = new_key()
    client.charge(key, source="tok_chargeDeclined")
    # When it is cancelled
    status, intent = cancel(client, key)
    # Then it is cancelled
    assert (status, intent["status"], intent["charge"]) == (200, "canceled", None)


def test_an_intent_never_charged_nor_cancelled_is_missing(client: GatewayClient) -> None:
    reply = client.get(f"/v1/payment_intents/{new_key()}")
    assert reply.status == 404
    assert reply.json()["error"]["code"] == "resource_missing"


def test_a_refund_by_charge_id_refunds_all_that_is_left(client: GatewayClient) -> None:
    # Given a charge of 1250
    charge = client.charge(new_key(), amount=1250).json()
    # When it is refunded without an amount
    reply = client.refund(charge["id"])
    # Then the refund is of 1250, and the charge is refunded in full
    refund = reply.json()
    assert reply.status == 200
    assert refund["id"].startswith("re_")
    assert {
        name: refund[name] for name in ("object", "charge", "amount", "currency", "status", "metadata")
    } == {
        "object": "refund",
        "charge": charge["id"],
        "amount": 1250,
        "currency": "eur",
        "status": "succeeded",
        "metadata": {"order_id": "refunded-order"},
    }
    assert client.get(f"/v1/refunds/{refund['id']}").json() == refund
    refunded = client.get(f"/v1/charges/{charge['id']}").json()
    assert (refunded["amount_refunded"], refunded["refunded"]) == (1250, True)


def test_a_refund_sent_again_replays_its_answer_and_refunds_once(client: GatewayClient) -> None:
    # Given a refunded charge
    charge = client.charge(new_key()).json()
    first = client.refund(charge["id"])
    # When the refund is sent again under its key
    again = client.refund(charge["id"])
    # Then the same refund comes back, replayed, and there is one refund
    assert (again.status, again.json()) == (200, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(client.get("/v1/refunds", {"charge": charge["id"]}).json()["data"]) == 1


def test_a_refund_of_an_unknown_charge_is_404_naming_the_charge(client: GatewayClient) -> None:
    reply = client.refund("ch_unknown")
    assert reply.status == 404
    assert (reply.json()["error"]["code"], reply.json()["error"]["param"]) == ("resource_missing", "charge")


def test_a_second_refund_under_another_key_finds_the_charge_already_refunded(client: GatewayClient) -> None:
    # Given a charge refunded in full
    charge = client.charge(new_key()).json()
    client.refund(charge["id"])
    # When another request (another key) refunds it again
    reply = client.post("/v1/refunds", {"charge": charge["id"]}, key=new_key("refund-again"))
    # Then it is refused: there is nothing left to refund
    assert reply.status == 400
    assert reply.json()["error"]["code"] == "charge_already_refunded"


def test_a_partial_refund_leaves_the_rest_and_no_more_than_the_rest(client: GatewayClient) -> None:
    # Given a charge of 1250 refunded 1000
    charge = client.charge(new_key(), amount=1250).json()
    assert client.refund(charge["id"], amount=1000).json()["amount"] == 1000
    # When 300 more are asked for, then 250
    too_much = client.post("/v1/refunds", {"charge": charge["id"], "amount": 300}, key=new_key("refund"))
    rest = client.post("/v1/refunds", {"charge": charge["id"], "amount": 250}, key=new_key("refund"))
    # Then 300 is too large, 250 is refunded, and the charge is refunded in full
    assert too_much.status == 400
    assert too_much.json()["error"]["code"] == "amount_too_large"
    assert rest.json()["amount"] == 250
    assert client.get(f"/v1/charges/{charge['id']}").json()["refunded"] is True


def test_a_failed_charge_is_not_refundable(client: GatewayClient) -> None:
    failed = client.charge(new_key(), source="tok_chargeDeclined").json()["error"]["charge"]
    reply = client.refund(failed)
    assert reply.status == 400
    assert reply.json()["error"]["code"] == "charge_not_refundable"


def test_an_unknown_refund_or_charge_is_missing(client: GatewayClient) -> None:
    for path in ("/v1/refunds/re_unknown", "/v1/charges/ch_unknown"):
        reply = client.get(path)
        assert reply.status == 404
        assert (reply.json()["error"]["code"], reply.json()["error"]["param"]) == ("resource_missing", "id")
