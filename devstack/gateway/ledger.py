"""Payment intents, charges and refunds: the contract's rules on them, each run inside the
store's transaction (a declined charge is recorded, then its 402 raised)."""

import json
import secrets
import sqlite3
from typing import Any

from . import params
from .errors import (
    AmountTooLarge,
    CardDeclined,
    ChargeAlreadyRefunded,
    ChargeNotRefundable,
    PaymentIntentUnexpectedState,
    ResourceMissing,
    Unavailable,
)
from .store import count_attempt
from .tokens import card_for


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def charge_object(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "charge",
        "amount": row["amount"],
        "currency": row["currency"],
        "status": row["status"],
        "payment_intent": row["payment_intent"],
        "amount_refunded": row["amount_refunded"],
        "refunded": row["amount_refunded"] == row["amount"],
        "metadata": json.loads(row["metadata"]),
        "created": row["created"],
    }


def refund_object(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "refund",
        "charge": row["charge"],
        "amount": row["amount"],
        "currency": row["currency"],
        "status": row["status"],
        "metadata": json.loads(row["metadata"]),
        "created": row["created"],
    }


def intent_object(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "object": "payment_intent", "status": row["status"], "charge": row["charge"]}


def find(db: sqlite3.Connection, table: str, object_id: str, param: str = "id") -> sqlite3.Row:
    """The row of a charge, refund or payment intent, or the contract's 404 naming `param`."""
    row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (object_id,)).fetchone()  # noqa: S608 - a fixed table
    if row is None:
        raise ResourceMissing(f"no such {table.removesuffix('s')}: {object_id}", param=param)
    return row  # type: ignore[no-any-return]


def save_intent(db: sqlite3.Connection, key: str, status: str, charge: str | None, now: int) -> None:
    db.execute(
        "INSERT INTO payment_intents (id, status, charge, created) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET status = excluded.status, charge = excluded.charge",
        (key, status, charge, now),
    )


def intent_status(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT status FROM payment_intents WHERE id = ?", (key,)).fetchone()
    return None if row is None else str(row["status"])


def create_charge(db: sqlite3.Connection, key: str, body: dict[str, Any], now: int) -> dict[str, Any]:
    """Charge the card under the intent `key`; a declined card leaves a failed charge behind."""
    params.only(body, {"amount", "currency", "source", "metadata"})
    amount = params.whole_number(params.required(body, "amount"), "amount", minimum=1)
    currency = params.currency(params.required(body, "currency"))
    card = card_for(params.text(params.required(body, "source"), "source"))
    metadata = params.metadata(body)
    if card.unavailable_attempts and count_attempt(db, key) <= card.unavailable_attempts:
        raise Unavailable("the gateway is unavailable; try again")
    if intent_status(db, key) == "canceled":
        raise CardDeclined("the payment intent was cancelled", decline_code="intent_canceled", charge=None)
    charge_id = new_id("ch")
    status = "failed" if card.decline_code else "succeeded"
    db.execute(
        "INSERT INTO charges"
        " (id, amount, currency, status, payment_intent, amount_refunded, metadata, created)"
        " VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
        (charge_id, amount, currency, status, key, json.dumps(metadata), now),
    )
    if card.decline_code:
        save_intent(db, key, "requires_payment", None, now)
        raise CardDeclined("the card was declined", decline_code=card.decline_code, charge=charge_id)
    save_intent(db, key, "succeeded", charge_id, now)
    return charge_object(find(db, "charges", charge_id))


def cancel_payment_intent(db: sqlite3.Connection, key: str, body: dict[str, Any], now: int) -> dict[str, Any]:
    """Cancel an intent that has no successful charge, so that no later charge under it succeeds."""
    params.only(body, set())
    if intent_status(db, key) == "succeeded":
        raise PaymentIntentUnexpectedState(
            "the payment intent has a successful charge; refund it instead",
            payment_intent=intent_object(find(db, "payment_intents", key)),
        )
    save_intent(db, key, "canceled", None, now)
    return intent_object(find(db, "payment_intents", key))


def create_refund(db: sqlite3.Connection, body: dict[str, Any], now: int) -> dict[str, Any]:
    """Refund `amount` of a successful charge (all that is left when it is omitted)."""
    params.only(body, {"charge", "amount", "metadata"})
    charge = find(db, "charges", params.text(params.required(body, "charge"), "charge"), param="charge")
    metadata = params.metadata(body)
    if charge["status"] != "succeeded":
        raise ChargeNotRefundable(f"charge {charge['id']} failed: there is nothing to refund")
    left = charge["amount"] - charge["amount_refunded"]
    if left == 0:
        raise ChargeAlreadyRefunded(f"charge {charge['id']} has already been refunded")
    amount = left if body.get("amount") is None else params.whole_number(body["amount"], "amount", minimum=1)
    if amount > left:
        raise AmountTooLarge(f"only {left} of charge {charge['id']} is left to refund", param="amount")
    refund_id = new_id("re")
    db.execute(
        "INSERT INTO refunds (id, charge, amount, currency, status, metadata, created)"
        " VALUES (?, ?, ?, ?, 'succeeded', ?, ?)",
        (refund_id, charge["id"], amount, charge["currency"], json.dumps(metadata), now),
    )
    db.execute(
        "UPDATE charges SET amount_refunded = amount_refunded + ? WHERE id = ?", (amount, charge["id"])
    )
    return refund_object(find(db, "refunds", refund_id))
