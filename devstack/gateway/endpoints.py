"""The gateway's endpoints, each one function over the store's transaction, and the routes that
name them."""

import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from . import ledger, params
from .errors import ResourceMissing
from .listing import list_objects
from .store import add_api_key, expire_valid_keys

ROLL_PATH = "/v1/api_keys/roll"


@dataclass(frozen=True)
class Call:
    """What an endpoint works from: the path's ids, the query, the body and the request's key."""

    ids: tuple[str, ...]
    query: dict[str, str]
    body: dict[str, Any]
    key: str
    now: int = field(default_factory=lambda: int(time.time()))


Endpoint = Callable[[sqlite3.Connection, Call], dict[str, Any]]


def create_charge(db: sqlite3.Connection, call: Call) -> dict[str, Any]:
    return ledger.create_charge(db, call.key, call.body, call.now)


def list_charges(db: sqlite3.Connection, call: Call) -> dict[str, Any]:
    return list_objects(db, "charges", call.query, ledger.charge_object, ("metadata[order_id]",))


def get_charge(db: sqlite3.Connection, call: Call) -> dict[str, Any]:
    return ledger.charge_object(ledger.find(db, "charges", call.ids[0]))


def get_payment_intent(db: sqlite3.Connection, call: Call) -> dict[str, Any]:
    return ledger.intent_object(ledger.find(db, "payment_intents", call.ids[0]))


def cancel_payment_intent(db: sqlite3.Connection, call: Call) -> dict[str, Any]:
    return ledger.cancel_payment_intent(db, call.ids[0], call.body, call.now)


def create_refund(db: sqlite3.Connection, call: Call) -> dict[str, Any]:
    return ledger.create_refund(db, call.body, call.now)


def list_refunds(db: sqlite3.Connection, call: Call) -> dict[str, Any]:
    return list_objects(db, "refunds", call.query, ledger.refund_object, ("metadata[order_id]", "charge"))


def get_refund(db: sqlite3.Connection, call: Call) -> dict[str, Any]:
    return ledger.refund_object(ledger.find(db, "refunds", call.ids[0]))


def roll_api_key(db: sqlite3.Connection, call: Call) -> dict[str, Any]:
    """A new key; every key valid now keeps working `grace_seconds` more."""
    params.only(call.body, {"grace_seconds"})
    grace = params.whole_number(params.required(call.body, "grace_seconds"), "grace_seconds", minimum=0)
    expires = call.now + grace
    expire_valid_keys(db, at=expires, now=call.now)
    return {"object": "api_key", "key": add_api_key(db, call.now), "expires_previous_at": expires}


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    endpoint: Endpoint
    charges_a_card: bool = False  # the body's `source` is a test token that can delay or lose the answer


def route(method: str, path: str, endpoint: Endpoint, charges_a_card: bool = False) -> Route:
    """`{id}` in the path stands for one segment, handed to the endpoint in `Call.ids`."""
    return Route(method, re.compile(path.replace("{id}", "([^/]+)")), endpoint, charges_a_card)


ROUTES = (
    route("POST", "/v1/charges", create_charge, charges_a_card=True),
    route("GET", "/v1/charges", list_charges),
    route("GET", "/v1/charges/{id}", get_charge),
    route("GET", "/v1/payment_intents/{id}", get_payment_intent),
    route("POST", "/v1/payment_intents/{id}/cancel", cancel_payment_intent),
    route("POST", "/v1/refunds", create_refund),
    route("GET", "/v1/refunds", list_refunds),
    route("GET", "/v1/refunds/{id}", get_refund),
    route("POST", ROLL_PATH, roll_api_key),
)


def find_route(method: str, path: str) -> tuple[Route, tuple[str, ...]]:
    for candidate in ROUTES:
        if candidate.method == method and (match := candidate.pattern.fullmatch(path)):
            return candidate, tuple(unquote(value) for value in match.groups())
    raise ResourceMissing(f"no endpoint {method} {path}")
