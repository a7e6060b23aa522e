"""The list endpoints a reconciliation reads: newest first, filtered, in pages."""

from typing import Any

import pytest

from tests.support.gateway import GatewayClient, new_key


def page(client: GatewayClient, path: str, **fields: str | int) -> dict[str, Any]:
    reply = client.get(path, fields)
    assert reply.status == 200, reply.data
    return dict(reply.json())


def ids(listed: dict[str, Any]) -> list[str]:
    return [item["id"] for item in listed["data"]]


def declined_charges(client: GatewayClient, order_id: str, count: int) -> list[str]:
    """`count` failed charges of the order, each under a key of its own, oldest first."""
    body = {
        "amount": 100,
        "currency": "eur",
        "source": "tok_chargeDeclined",
        "metadata": {"order_id": order_id},
    }
    return [client.post("/v1/charges", body, key=new_key()).json()["error"]["charge"] for _ in range(count)]


def test_charges_of_an_order_come_newest_first_in_pages(client: GatewayClient) -> None:
    # Given five charges of one order (declined ones: the intent stays open to more) and one of another
    order_id = new_key()
    made = declined_charges(client, order_id, 5)
    client.charge(new_key())
    # When they are read two at a time, each page starting after the last one read
    of_order = {"metadata[order_id]": order_id, "limit": 2}
    first = page(client, "/v1/charges", **of_order)
    second = page(client, "/v1/charges", **of_order, starting_after=ids(first)[-1])
    third = page(client, "/v1/charges", **of_order, starting_after=ids(second)[-1])
    # Then the pages hold the order's charges, newest first, and say whether more follow
    assert [ids(first), ids(second), ids(third)] == [made[4:2:-1], made[2:0:-1], made[0:1]]
    assert [first["has_more"], second["has_more"], third["has_more"]] == [True, True, False]
    assert first["object"] == "list"


def test_a_page_holds_ten_unless_told(client: GatewayClient) -> None:
    # Given eleven charges of one order
    order_id = new_key()
    made = declined_charges(client, order_id, 11)
    # When they are listed without a limit
    listed = page(client, "/v1/charges", **{"metadata[order_id]": order_id})
    # Then the page holds the newest ten, and more follow
    assert ids(listed) == made[:0:-1]
    assert listed["has_more"] is True


def test_charges_are_filtered_by_their_creation_time(client: GatewayClient) -> None:
    # Given a charge of an order, created at T
    order_id = new_key()
    charge = client.charge(order_id).json()
    created = charge["created"]
    of_order = {"metadata[order_id]": order_id}
    # Then it is listed from T on, and before T + 1, but neither from T + 1 nor before T
    assert ids(page(client, "/v1/charges", **of_order, **{"created[gte]": created})) == [charge["id"]]
    assert ids(page(client, "/v1/charges", **of_order, **{"created[lt]": created + 1})) == [charge["id"]]
    assert ids(page(client, "/v1/charges", **of_order, **{"created[gte]": created + 1})) == []
    assert ids(page(client, "/v1/charges", **of_order, **{"created[lt]": created})) == []


def test_refunds_are_listed_by_charge_and_by_order(client: GatewayClient) -> None:
    # Given two refunds of one charge, and a refund of another charge
    charge = client.charge(new_key(), amount=1000).json()
    order_id = new_key()
    refunds = [
        client.post(
            "/v1/refunds",
            {"charge": charge["id"], "amount": 100, "metadata": {"order_id": order_id}},
            key=new_key(),
        ).json()["id"]
        for _ in range(2)
    ]
    other = client.refund(client.charge(new_key()).json()["id"]).json()
    # Then each filter lists its own, newest first
    assert ids(page(client, "/v1/refunds", charge=charge["id"])) == refunds[::-1]
    assert ids(page(client, "/v1/refunds", **{"metadata[order_id]": order_id})) == refunds[::-1]
    assert ids(page(client, "/v1/refunds", charge=other["charge"])) == [other["id"]]
    first = page(client, "/v1/refunds", charge=charge["id"], limit=1)
    assert (ids(first), first["has_more"]) == ([refunds[1]], True)
    rest = page(client, "/v1/refunds", charge=charge["id"], starting_after=refunds[1])
    assert (ids(rest), rest["has_more"]) == ([refunds[0]], False)


@pytest.mark.parametrize(
    ("path", "fields", "status", "code", "param"),
    [
        ("/v1/charges", {"limit": 0}, 400, "parameter_invalid", "limit"),
        ("/v1/charges", {"limit": 101}, 400, "parameter_invalid", "limit"),
        ("/v1/charges", {"created[gte]": "yesterday"}, 400, "parameter_invalid", "created[gte]"),
        ("/v1/charges", {"charge": "ch_1"}, 400, "parameter_invalid", "charge"),
        ("/v1/refunds", {"starting_after": "re_unknown"}, 404, "resource_missing", "starting_after"),
    ],
)
def test_a_list_with_a_wrong_parameter_names_it(
    client: GatewayClient, path: str, fields: dict[str, str | int], status: int, code: str, param: str
) -> None:
    reply = client.get(path, fields)
    assert reply.status == status
    assert (reply.json()["error"]["code"], reply.json()["error"]["param"]) == (code, param)
