"""Every RPC needs a valid RS256 access token from our issuer, for us, with the right scope."""

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from tests.support.edge import AUDIENCE, ISSUER, Edge, EdgeFactory, make_token, status_of
from tests.support.processes import free_port


def get_order(edge: Edge, metadata: tuple[tuple[str, str], ...]) -> None:
    edge.stub.GetOrder(pb.GetOrderRequest(order_id=str(uuid.uuid4())), metadata=metadata)


def unsigned_token() -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300, "scope": "orders:read"}
    return jwt.encode(claims, "", algorithm="none")


def token_signed_by_another_key() -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300, "scope": "orders:read"}
    return jwt.encode(claims, other, algorithm="RS256")


def hs256_with_the_public_key(edge: Edge) -> str:
    """The algorithm-confusion attack: an HMAC token keyed with the (public) RSA key."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300}).encode())
    key = edge.key.public_file.read_bytes()
    signature = b64(hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest())
    return f"{header}.{body}.{signature}"


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Basic YWxpY2U6c2VjcmV0"),),
        (("authorization", "Bearer not.a.jwt"),),
        "unsigned",
        "another-key",
        "hs256-confusion",
        "expired",
        "wrong-audience",
        "wrong-issuer",
        "no-subject",
        "no-expiry",
    ],
    ids=lambda value: value if isinstance(value, str) else str(len(value)),
)
def test_a_request_without_a_valid_token_is_unauthenticated(edge: Edge, metadata: object) -> None:
    tokens: dict[str, Callable[[], str]] = {
        "unsigned": unsigned_token,
        "another-key": token_signed_by_another_key,
        "hs256-confusion": lambda: hs256_with_the_public_key(edge),
        "expired": lambda: make_token(edge.key, "alice", exp=int(time.time()) - 120),
        "wrong-audience": lambda: make_token(edge.key, "alice", aud="someone-else"),
        "wrong-issuer": lambda: make_token(edge.key, "alice", iss="https://evil.example"),
        "no-subject": lambda: make_token(edge.key, None),  # type: ignore[arg-type]
        "no-expiry": lambda: make_token(edge.key, "alice", exp=None),
    }
    if isinstance(metadata, str):
        metadata = (("authorization", f"Bearer {tokens[metadata]()}"),)
    with pytest.raises(grpc.RpcError) as error:
        get_order(edge, metadata)  # type: ignore[arg-type]
    assert status_of(error.value) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("rpc", "scopes"),
    [
        ("CreateOrder", ("orders:read",)),
        ("CancelOrder", ("orders:read",)),
        ("GetOrder", ("orders:write",)),
        ("ListOrders", ()),
        ("WatchOrder", ("profile",)),
    ],
)
def test_a_token_without_the_rpcs_scope_is_permission_denied(
    edge: Edge, rpc: str, scopes: tuple[str, ...]
) -> None:
    order_id = str(uuid.uuid4())
    requests = {
        "CreateOrder": pb.CreateOrderRequest(
            idempotency_key="k", items=[pb.OrderItem(product_id="p", quantity=1)]
        ),
        "CancelOrder": pb.CancelOrderRequest(order_id=order_id),
        "GetOrder": pb.GetOrderRequest(order_id=order_id),
        "ListOrders": pb.ListOrdersRequest(),
        "WatchOrder": pb.WatchOrderRequest(order_id=order_id),
    }
    call = getattr(edge.stub, rpc)
    with pytest.raises(grpc.RpcError) as error:
        answer = call(requests[rpc], metadata=edge.auth("alice", scopes))
        if rpc == "WatchOrder":
            next(answer)
    assert status_of(error.value) == grpc.StatusCode.PERMISSION_DENIED
    assert edge.count("orders") == 0


def test_a_cognito_access_token_with_client_id_and_prefixed_scopes_is_accepted(edge: Edge) -> None:
    token = make_token(edge.key, "alice", scopes=("orders-api/orders:read",), aud=None, client_id=AUDIENCE)
    answer = edge.stub.ListOrders(pb.ListOrdersRequest(), metadata=(("authorization", f"Bearer {token}"),))
    assert list(answer.orders) == []


@dataclass
class Issuer:
    """An issuer's JWKS endpoint (what Cognito serves) on a local HTTP server, counting fetches."""

    url: str
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    fetches: int = 0

    def publish(self, kid: str) -> rsa.RSAPrivateKey:
        """A new signing key, listed in the JWKS from the next fetch on (a rotation)."""
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.keys[kid]

    def jwks(self) -> bytes:
        self.fetches += 1
        keys = [
            json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())) | {"kid": kid, "use": "sig"}
            for kid, key in self.keys.items()
        ]
        return json.dumps({"keys": keys}).encode()

    def token(self, kid: str, key: rsa.RSAPrivateKey | None = None) -> tuple[tuple[str, str]]:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300, "scope": "orders:read"}
        signed = jwt.encode(claims, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})
        return (("authorization", f"Bearer {signed}"),)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    found = Issuer(f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json")
    found.publish("key-1")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = found.jwks()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    thread.join()


def list_orders(edge: Edge, metadata: tuple[tuple[str, str]]) -> grpc.StatusCode:
    """The status of a ListOrders call with this metadata."""
    try:
        edge.stub.ListOrders(pb.ListOrdersRequest(), metadata=metadata, timeout=30)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_tokens_are_verified_with_the_issuers_jwks(edge_factory: EdgeFactory, issuer: Issuer) -> None:
    edge = edge_factory(jwt_jwks_url=issuer.url)
    assert list_orders(edge, issuer.token("key-1")) == grpc.StatusCode.OK
    # A kid the issuer never published, or the right kid over another key's signature, is refused
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert list_orders(edge, issuer.token("key-2", other)) == grpc.StatusCode.UNAUTHENTICATED
    assert list_orders(edge, issuer.token("key-1", other)) == grpc.StatusCode.UNAUTHENTICATED


def test_a_key_published_after_the_first_fetch_is_accepted(edge_factory: EdgeFactory, issuer: Issuer) -> None:
    # Given an edge that fetched the JWKS once, and no cool-down between refetches
    edge = edge_factory(jwt_jwks_url=issuer.url, jwt_jwks_refetch_seconds=0)
    assert list_orders(edge, issuer.token("key-1")) == grpc.StatusCode.OK
    assert issuer.fetches == 1
    # When the issuer rotates: a new key, and tokens signed with it
    issuer.publish("key-2")
    # Then the unknown kid makes the edge fetch the JWKS again, and the token is accepted
    assert list_orders(edge, issuer.token("key-2")) == grpc.StatusCode.OK
    assert issuer.fetches == 2
    # and the old key keeps working from the refreshed set, without another fetch
    assert list_orders(edge, issuer.token("key-1")) == grpc.StatusCode.OK
    assert issuer.fetches == 2


def test_unknown_kids_refetch_the_jwks_at_most_once_per_cool_down(
    edge_factory: EdgeFactory, issuer: Issuer
) -> None:
    # Given an edge whose cool-down between refetches outlasts the test
    edge = edge_factory(jwt_jwks_url=issuer.url, jwt_jwks_refetch_seconds=3600)
    assert list_orders(edge, issuer.token("key-1")) == grpc.StatusCode.OK
    # When a flood of tokens names kids the issuer never published
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answers = {list_orders(edge, issuer.token(f"made-up-{n}", forged)) for n in range(20)}
    # Then each is refused, and none of them made the edge fetch the JWKS again
    assert answers == {grpc.StatusCode.UNAUTHENTICATED}
    assert issuer.fetches == 1


def test_an_unreachable_jwks_is_unavailable_not_unauthenticated(edge_factory: EdgeFactory) -> None:
    # a port this run holds and nothing listens on (a released kernel-chosen one could be reused)
    edge = edge_factory(jwt_jwks_url=f"http://127.0.0.1:{free_port()}/.well-known/jwks.json")
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300, "scope": "orders:read"}
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "key-1"})
    assert list_orders(edge, (("authorization", f"Bearer {token}"),)) == grpc.StatusCode.UNAVAILABLE
