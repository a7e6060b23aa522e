"""A property-based fuzzer of the edge: generated requests through a real channel to every RPC.

Requests carry random unicode, huge and empty strings, boundary and negative numbers, unknown
enum values, repeated and missing fields, random and garbled tokens and metadata; raw random
bytes go where a message should be. For every request: no INTERNAL or UNKNOWN, no row written by
a request that failed, and the server still healthy afterwards. The responses are counted by code
and printed at the end of the module (run with -s to see them).

`make test` runs a short run (FUZZ_REQUESTS examples per test, 40 by default) on the same inputs
every time (derandomized); the long run is `make fuzz` (FUZZ_REQUESTS=10000 split across the
tests, see the Makefile), on a seed it picks at random and prints: FUZZ_SEED=<seed> replays it.
"""

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from devstack.issuer.tokens import LocalIssuer
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from tests.support.edge import Edge, make_token

REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "40"))
REPORT = os.environ.get("FUZZ_REPORT")  # a file that gets the counts too
SEED = os.environ.get("FUZZ_SEED") or None  # unset: derandomized, the same examples on every run
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
METHODS = ("CreateOrder", "GetOrder", "CancelOrder", "ListOrders", "WatchOrder")
USERS = ("alice", "bob")
PRODUCTS = ("book", "lamp", "pen")
CODES: Counter[str] = Counter()

FUZZ_SETTINGS = settings(
    max_examples=REQUESTS,
    deadline=None,
    database=None,
    derandomize=SEED is None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def fuzz(test: Callable[..., None]) -> Callable[..., None]:
    """The fuzzer's settings, and FUZZ_SEED's seed when there is one."""
    return FUZZ_SETTINGS(seed(int(SEED))(test) if SEED else test)


# -- values ---------------------------------------------------------------------------------------

SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
unicode = st.characters(exclude_categories=SURROGATES)  # a str a client can encode (UTF-8)
huge = st.builds(lambda char, size: char * size, unicode, st.integers(1_000, 300_000))
texts = st.one_of(
    st.just(""),
    st.text(unicode, max_size=40),
    huge,
    st.sampled_from(
        [*PRODUCTS, "tok_visa", "tok_chargeDeclined", " ", "\x00", "a@b.co", "../../etc", "' OR 1=1 --"]
    ),
    st.uuids().map(str),
)
int32 = st.one_of(
    st.sampled_from([0, 1, -1, 1000, 1001, 2**31 - 1, -(2**31), 100, 101]),
    st.integers(-(2**31), 2**31 - 1),
)
items = st.lists(
    st.builds(pb.OrderItem, product_id=st.one_of(st.sampled_from(PRODUCTS), texts), quantity=int32),
    max_size=110,
)


def order_ids(existing: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(existing), texts)


def messages(existing: list[str]) -> dict[str, st.SearchStrategy[Any]]:
    """A strategy for the request message of each RPC."""
    ids = order_ids(existing)
    return {
        "CreateOrder": st.builds(
            pb.CreateOrderRequest, idempotency_key=texts, items=items, payment_token=texts, email=texts
        ),
        "GetOrder": st.builds(pb.GetOrderRequest, order_id=ids),
        "CancelOrder": st.builds(pb.CancelOrderRequest, order_id=ids, reason=texts),
        "ListOrders": st.builds(pb.ListOrdersRequest, page_size=int32, page_token=texts, status=int32),
        "WatchOrder": st.builds(pb.WatchOrderRequest, order_id=ids),
    }


def requests(existing: list[str]) -> st.SearchStrategy[tuple[str, Any]]:
    by_method = messages(existing)
    return st.sampled_from(METHODS).flatmap(lambda method: st.tuples(st.just(method), by_method[method]))


# Metadata a client can send: lower-case keys of the legal characters, printable ASCII values.
metadata_keys = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_."), min_size=1, max_size=20
).filter(lambda key: not key.startswith("grpc-") and not key.endswith("-bin"))
ascii_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)


def tokens(key: LocalIssuer) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Good tokens, and every way to spoil one: garbled, expired, wrong issuer, an ID token, an
    unprefixed or unknown scope, another algorithm, plain garbage; plus random extra metadata
    (an `x-customer-id` among it), or none at all."""
    good = st.sampled_from(USERS).map(lambda sub: make_token(key, sub))
    spoiled = st.one_of(
        st.tuples(good, st.integers(0, 400), st.sampled_from("A-_.x")).map(_garble),
        st.sampled_from(USERS).map(lambda sub: make_token(key, sub, exp=int(time.time()) - 60)),
        st.sampled_from(USERS).map(lambda sub: make_token(key, sub, iss="someone-else")),
        st.sampled_from(USERS).map(key.id_token),
        st.sampled_from(USERS).map(lambda sub: make_token(key, sub, scope="orders:read orders:write")),
        st.sampled_from(USERS).map(lambda sub: make_token(key, sub, scopes=("orders:admin",))),
        st.sampled_from(USERS).map(lambda sub: jwt.encode({"sub": sub, "iss": key.url}, "k", "HS256")),
        st.just(UNSIGNED),
        ascii_values,
    )
    authorization = st.one_of(
        good.map(lambda token: f"Bearer {token}"),
        spoiled.map(lambda token: f"Bearer {token}"),
        ascii_values,
    )
    extra = st.lists(st.tuples(st.one_of(metadata_keys, st.just("x-customer-id")), ascii_values), max_size=3)
    with_auth = st.tuples(authorization, extra).map(lambda pair: [("authorization", pair[0]), *pair[1]])
    return st.one_of(with_auth, extra)


# A token that claims no signature algorithm ("alg": "none"), for alice.
UNSIGNED = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSJ9."


def _garble(parts: tuple[str, int, str]) -> str:
    token, at, char = parts
    at %= len(token)
    return token[:at] + char + token[at + 1 :]


# -- calling ------------------------------------------------------------------------------------


def call(edge: Edge, method: str, request: Any, metadata: list[tuple[str, str]]) -> grpc.StatusCode:
    """The status of one call; a stream is read to its first message, then cancelled."""
    try:
        if method == "WatchOrder":
            stream = edge.stub.WatchOrder(request, metadata=tuple(metadata), timeout=10)
            try:
                next(iter(stream))
            finally:
                stream.cancel()
        else:
            getattr(edge.stub, method)(request, metadata=tuple(metadata), timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def raw_call(edge: Edge, method: str, payload: bytes, metadata: list[tuple[str, str]]) -> grpc.StatusCode:
    """Bytes sent where a message of `method` should be, with no serializer in between."""
    path = f"/orders.v1.OrderService/{method}"
    channel: Any = edge.channel  # no (de)serializers: the bytes go as they are
    try:
        if method == "WatchOrder":
            stream = channel.unary_stream(path)(payload, metadata=metadata, timeout=10)
            try:
                next(iter(stream))
            finally:
                stream.cancel()
        else:
            channel.unary_unary(path)(payload, metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        return error.code()
    except StopIteration:
        pass
    return grpc.StatusCode.OK


ROWS = (
    "SELECT (SELECT COUNT(*) FROM orders) + (SELECT COUNT(*) FROM saga_log)"
    " + (SELECT COUNT(*) FROM payments) AS n"
)


def checked(edge: Edge, method: str, send: Callable[[], grpc.StatusCode]) -> grpc.StatusCode:
    """Send, then check the per-request properties; count the code (by test, method and code)."""
    before = int(edge.sql(ROWS)[0]["n"])
    code = send()
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]
    CODES[f"{test} {method} {code.name}"] += 1
    assert code not in NEVER, f"{method} answered {code.name}"
    if code is not grpc.StatusCode.OK:
        assert int(edge.sql(ROWS)[0]["n"]) == before, f"{method} failed with {code.name} but wrote rows"
    return code


def healthy(edge: Edge) -> None:
    health = health_pb2_grpc.HealthStub(edge.channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    # and a well-formed order still goes through
    order = edge.create([("pen", 1)], sub="carol")
    assert order.status == pb.ORDER_STATUS_PENDING


# -- the properties ---------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _print_counts() -> Iterator[None]:
    yield
    lines = []
    for test in sorted({key.split()[0] for key in CODES}):
        mine = {key: n for key, n in CODES.items() if key.startswith(f"{test} ")}
        by_code: Counter[str] = Counter()
        for key, count in mine.items():
            by_code[key.split()[2]] += count
        lines.append(
            f"{test}: {sum(mine.values())} requests; "
            + ", ".join(f"{c}={n}" for c, n in by_code.most_common())
        )
        lines += [f"    {key.split(maxsplit=1)[1]}: {n}" for key, n in sorted(mine.items())]
    lines.insert(0, f"seed: {SEED}" if SEED else "seed: none (derandomized)")
    print("\nfuzz counts by code\n" + "\n".join(lines))
    if REPORT:
        Path(REPORT).write_text("\n".join(lines) + "\n")


@pytest.fixture
def fuzzed_edge(edge_factory: Callable[..., Edge], shop: Any) -> Iterator[tuple[Edge, list[str]]]:
    """An edge with no rate limit, and one order per user to aim Get/Cancel/Watch at."""
    edge = edge_factory(rate_limit_per_minute=0)
    existing = [edge.create([("book", 1)], sub=user).order_id for user in USERS]
    yield edge, existing
    healthy(edge)


@given(data=st.data())
@fuzz
def test_generated_messages_never_break_the_edge(
    fuzzed_edge: tuple[Edge, list[str]], data: st.DataObject
) -> None:
    edge, existing = fuzzed_edge
    method, request = data.draw(requests(existing))
    metadata = data.draw(
        st.one_of(st.sampled_from(USERS).map(lambda u: list(edge.auth(u))), tokens(edge.issuer))
    )
    checked(edge, method, lambda: call(edge, method, request, metadata))


@given(data=st.data())
@fuzz
def test_random_and_garbled_tokens_are_refused_cleanly(
    fuzzed_edge: tuple[Edge, list[str]], data: st.DataObject
) -> None:
    edge, existing = fuzzed_edge
    method, request = data.draw(requests(existing))
    metadata = data.draw(tokens(edge.issuer))
    checked(edge, method, lambda: call(edge, method, request, metadata))


@given(data=st.data())
@fuzz
def test_odd_but_valid_wire_messages_never_break_the_edge(
    fuzzed_edge: tuple[Edge, list[str]], data: st.DataObject
) -> None:
    # Wire-level oddities the parser accepts: two messages concatenated (repeated fields merge,
    # scalars repeated: the last wins), unknown fields of every wire type, an empty message.
    edge, existing = fuzzed_edge
    method = data.draw(st.sampled_from(METHODS))
    first, second = data.draw(st.tuples(messages(existing)[method], messages(existing)[method]))
    unknown = data.draw(st.lists(st.sampled_from(UNKNOWN_FIELDS), max_size=4))
    payload = data.draw(
        st.sampled_from(
            [
                b"",
                first.SerializeToString() + second.SerializeToString(),
                first.SerializeToString() + b"".join(unknown),
            ]
        )
    )
    checked(edge, method, lambda: raw_call(edge, method, payload, list(edge.auth())))


# Unknown fields (numbers 50 and 51) of the varint, 64-bit, length-delimited and 32-bit wire types.
UNKNOWN_FIELDS = [
    b"\x90\x03\x96\x01",
    b"\x91\x03" + b"\x01" * 8,
    b"\x92\x03\x03abc",
    b"\x9d\x03" + b"\xff" * 4,
]


@given(data=st.data())
@fuzz
def test_raw_bytes_that_do_not_parse_are_invalid_argument(
    fuzzed_edge: tuple[Edge, list[str]], data: st.DataObject
) -> None:
    edge, _ = fuzzed_edge
    method = data.draw(st.sampled_from(METHODS))
    payload = data.draw(
        st.one_of(st.binary(min_size=1, max_size=2000), st.sampled_from([b"\x0a\x02\xc3\x28", b"\x0a\x05ab"]))
    )
    checked(edge, method, lambda: raw_call(edge, method, payload, list(edge.auth())))


@given(sub=st.one_of(st.just(""), st.text(unicode, min_size=129, max_size=400)))
@fuzz
def test_a_token_with_an_unusable_subject_is_unauthenticated(
    fuzzed_edge: tuple[Edge, list[str]], sub: str
) -> None:
    edge, _ = fuzzed_edge
    metadata = [("authorization", f"Bearer {make_token(edge.issuer, sub)}")]
    request = pb.CreateOrderRequest(
        idempotency_key=str(uuid.uuid4()),
        items=[pb.OrderItem(product_id="pen", quantity=1)],
        payment_token="tok_visa",
    )
    assert checked(edge, "CreateOrder", lambda: call(edge, "CreateOrder", request, metadata)) is (
        grpc.StatusCode.UNAUTHENTICATED
    )
