"""The path of a request through the gateway: faults on demand, the API key, the rate limit, then
idempotent execution (every POST) or a read (every GET)."""

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import params
from .control import Control
from .endpoints import ROLL_PATH, Call, Endpoint, Route, find_route
from .errors import (
    Answer,
    ApiKeyExpired,
    GatewayError,
    IdempotencyKeyInUse,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    InvalidApiKey,
    ParameterInvalid,
    error_answer,
)
from .faults import Faults, refuse_before_execution
from .ratelimit import TokenBucket
from .store import (
    IdempotencyRecord,
    Store,
    add_api_key,
    api_key_expiry,
    begin_record,
    find_record,
    finish_record,
    forget_record,
    newest_api_key,
)
from .tokens import Card, card_for

MAX_IDEMPOTENCY_KEY = 255
STORED_STATUSES = {200, 400, 402, 404}  # the answers of executed requests, replayed under their key


@dataclass(frozen=True)
class Request:
    """An HTTP request as the server read it."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    client: str
    authorization: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The answer, and how it is delivered: after `delay_seconds`, or not at all (`drop`)."""

    answer: Answer
    delay_seconds: float = 0.0
    drop: bool = False
    hold: threading.Event | None = None  # set: the answer may go (a `hold` fault cleared)


def idempotency_key(request: Request) -> str:
    if not request.idempotency_key:
        raise IdempotencyKeyMissing("every POST carries an Idempotency-Key header")
    if len(request.idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise ParameterInvalid(
            f"Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY} characters", param="Idempotency-Key"
        )
    return request.idempotency_key


def run(endpoint: Endpoint, db: sqlite3.Connection, call: Call) -> Answer:
    """The endpoint's answer; a typed error's answer keeps what the endpoint wrote (a failed charge)."""
    try:
        return Answer(200, endpoint(db, call))
    except GatewayError as error:
        return error_answer(error)


class Gateway:
    """The account's gateway: its store, rate limit and faults on demand, and the file that holds
    its newest API key."""

    def __init__(self, store: Store, rate: TokenBucket, key_file: Path) -> None:
        self.store = store
        self.rate = rate
        self.faults = Faults()
        self.control = Control(store, self.faults, rate)
        self.key_file = key_file
        with store.transaction() as db:
            if newest_api_key(db) is None:
                add_api_key(db, int(time.time()))
        self.publish_key()

    def publish_key(self) -> None:
        """Write the newest key to the key file, readable by its owner only."""
        with self.store.transaction() as db:
            key = newest_api_key(db)
        written = self.key_file.with_name(f".{self.key_file.name}.new")
        descriptor = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"{key}\n")
        os.replace(written, self.key_file)

    def handle(self, request: Request) -> Outcome:
        if request.method == "GET" and request.path == "/health":
            return Outcome(Answer(200, {"status": "ok"}))
        if request.path.startswith("/_control/"):
            return Outcome(self.control.handle(request.method, request.path, request.body, request.client))
        return self.serve_v1(request)

    def serve_v1(self, request: Request) -> Outcome:
        """An API request: faults on demand, the key, the rate, then the endpoint."""
        fault = self.faults.take(request.method, request.path)
        card = Card()
        try:
            refuse_before_execution(fault)
            self.authenticate(request.authorization)
            self.rate.take()
            found, ids = find_route(request.method, request.path)
            if request.method == "GET":
                answer = self.read(found, Call(ids, request.query, {}, key=""))
            else:
                call = Call(ids, request.query, params.json_object(request.body), idempotency_key(request))
                card = card_for(call.body.get("source")) if found.charges_a_card else Card()
                answer = self.execute_once(found, request, call, card)
        except GatewayError as error:
            answer = error_answer(error)
        if request.path == ROLL_PATH and answer.status == 200:
            self.publish_key()
        delay_ms = fault.delay_ms if fault is not None and fault.kind == "slow" else None
        return Outcome(
            answer,
            delay_seconds=(delay_ms or 0) / 1000,
            drop=card.loses_answer or (fault is not None and fault.kind == "lost_answer"),
            hold=fault.released if fault is not None and fault.kind == "hold" else None,
        )

    def authenticate(self, authorization: str | None) -> None:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme != "Bearer" or not key:
            raise InvalidApiKey("no API key: send Authorization: Bearer <api key>")
        with self.store.transaction() as db:
            try:
                expires_at = api_key_expiry(db, key)
            except KeyError:
                raise InvalidApiKey("invalid API key") from None
        if expires_at is not None and time.time() >= expires_at:
            raise ApiKeyExpired(f"the API key expired at {expires_at}; use the newest key")

    def read(self, found: Route, call: Call) -> Answer:
        with self.store.transaction() as db:
            return run(found.endpoint, db, call)

    def execute_once(self, found: Route, request: Request, call: Call, card: Card) -> Answer:
        """Execute a POST under its key once: the work and its answer commit together; the same
        request again replays the answer, another request under the key is refused."""
        record = IdempotencyRecord(request.method, request.path, json.dumps(call.body, sort_keys=True), None)
        with self.store.transaction() as db:
            stored = find_record(db, call.key)
            if stored is None:
                begin_record(db, call.key, record, call.now)
            elif (stored.method, stored.path, stored.body) != (record.method, record.path, record.body):
                raise IdempotencyKeyReused("the key was used by a request with another path or body")
            elif stored.answer is None:
                raise IdempotencyKeyInUse("a request with this key is being executed; try again later")
            else:
                return Answer(stored.answer.status, stored.answer.body, {"Idempotent-Replayed": "true"})
        try:
            time.sleep(card.delay_seconds)
            with self.store.transaction() as db:
                answer = run(found.endpoint, db, call)
                if answer.status in STORED_STATUSES:
                    finish_record(db, call.key, answer)
                else:
                    forget_record(db, call.key)
        except BaseException:
            with self.store.transaction() as db:
                forget_record(db, call.key)
            raise
        return answer
