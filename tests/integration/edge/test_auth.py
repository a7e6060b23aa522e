"""Every RPC needs a valid RS256 access token (never an ID token) from our issuer, with this API's
scope for it, written with the resource server's prefix; keys come from the issuer's JWKS."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.issuer.keys import KeyRing
from devstack.issuer.server import serving_issuer
from devstack.issuer.tokens import LocalIssuer
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from tests.support.edge import Edge, EdgeFactory, make_token, status_of
from tests.support.processes import free_port


def get_order(edge: Edge, metadata: tuple[tuple[str, str], ...]) -> None:
    edge.stub.GetOrder(pb.GetOrderRequest(order_id=str(uuid.uuid4())), metadata=metadata)


def unsigned_token(edge: Edge) -> str:
    claims = {"iss": edge.issuer.url, "sub": "alice", "exp": int(time.time()) + 300, "token_use": "access"}
    return jwt.encode(claims | {"client_id": "app", "scope": "orders-api/orders:read"}, "", algorithm="none")


def token_signed_by_another_key(edge: Edge) -> str:
    """The published kid, over another key's signature."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    genuine = make_token(edge.issuer, "alice")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    return jwt.encode(claims, other, algorithm="RS256", headers=jwt.get_unverified_header(genuine))


def hs256_with_the_public_key(edge: Edge) -> str:
    """The algorithm-confusion attack: an HMAC token keyed with the (public) RSA key."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    kid, private_pem = edge.issuer.keys.signing_key()
    private = serialization.load_pem_private_key(private_pem, password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    claims = {"iss": edge.issuer.url, "sub": "alice", "exp": int(time.time()) + 300, "token_use": "access"}
    body = b64(json.dumps(claims | {"client_id": "app", "scope": "orders-api/orders:read"}).encode())
    signature = b64(hmac.new(public, f"{header}.{body}".encode(), hashlib.sha256).digest())
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
        "wrong-issuer",
        "no-subject",
        "bad-subject",
        "no-expiry",
        "no-client-id",
        "no-token-use",
        "id-token",
    ],
    ids=lambda value: value if isinstance(value, str) else str(len(value)),
)
def test_a_request_without_a_valid_token_is_unauthenticated(edge: Edge, metadata: object) -> None:
    tokens: dict[str, Callable[[], str]] = {
        "unsigned": lambda: unsigned_token(edge),
        "another-key": lambda: token_signed_by_another_key(edge),
        "hs256-confusion": lambda: hs256_with_the_public_key(edge),
        "expired": lambda: make_token(edge.issuer, "alice", exp=int(time.time()) - 120),
        "wrong-issuer": lambda: make_token(edge.issuer, "alice", iss="https://evil.example"),
        "no-subject": lambda: make_token(edge.issuer, None),  # type: ignore[arg-type]
        "bad-subject": lambda: make_token(edge.issuer, "alice bob"),
        "no-expiry": lambda: make_token(edge.issuer, "alice", exp=None),
        "no-client-id": lambda: make_token(edge.issuer, "alice", client_id=None),
        "no-token-use": lambda: make_token(edge.issuer, "alice", token_use=None),
        # An ID token proves who signed in to an app, not what the app may do.
        "id-token": lambda: edge.issuer.id_token("alice"),
    }
    if isinstance(metadata, str):
        metadata = (("authorization", f"Bearer {tokens[metadata]()}"),)
    with pytest.raises(grpc.RpcError) as error:
        get_order(edge, metadata)  # type: ignore[arg-type]
    assert status_of(error.value) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("rpc", "scope"),
    [
        ("CreateOrder", "orders-api/orders:read"),
        ("CancelOrder", "orders-api/orders:read"),
        ("GetOrder", "orders-api/orders:write"),
        ("ListOrders", ""),
        ("WatchOrder", "profile"),
        # The scope's name without the resource server, or under another one, is not this API's.
        ("GetOrder", "orders:read"),
        ("GetOrder", "other-api/orders:read"),
        ("GetOrder", "xorders-api/orders:read"),
    ],
)
def test_a_token_without_the_rpcs_scope_is_permission_denied(edge: Edge, rpc: str, scope: str) -> None:
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
    metadata = (("authorization", f"Bearer {make_token(edge.issuer, 'alice', scope=scope)}"),)
    call = getattr(edge.stub, rpc)
    with pytest.raises(grpc.RpcError) as error:
        answer = call(requests[rpc], metadata=metadata)
        if rpc == "WatchOrder":
            next(answer)
    assert status_of(error.value) == grpc.StatusCode.PERMISSION_DENIED
    assert edge.count("orders") == 0


class CountingKeys(KeyRing):
    """The issuer's keys, counting how often its JWKS is served."""

    fetches = 0

    def jwks(self) -> dict[str, Any]:
        self.fetches += 1
        return super().jwks()


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[LocalIssuer, CountingKeys]]:
    keys = CountingKeys(tmp_path / "keys")
    with serving_issuer(keys) as issuer:
        yield issuer, keys


def list_orders(edge: Edge, token: str) -> grpc.StatusCode:
    """The status of a ListOrders call with this token."""
    try:
        edge.stub.ListOrders(
            pb.ListOrdersRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=30
        )
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def edge_of(edge_factory: EdgeFactory, issuer: LocalIssuer, **settings: Any) -> Edge:
    return edge_factory(jwt_issuer=issuer.url, jwt_jwks_url=issuer.jwks_url, **settings)


def test_a_key_published_after_the_first_fetch_is_accepted(
    edge_factory: EdgeFactory, counted: tuple[LocalIssuer, CountingKeys]
) -> None:
    # Given an edge that fetched the JWKS once, and no cool-down between refetches
    issuer, keys = counted
    edge = edge_of(edge_factory, issuer, jwt_jwks_refetch_seconds=0)
    first = make_token(issuer, "alice")
    assert list_orders(edge, first) == grpc.StatusCode.OK
    assert keys.fetches == 1
    # When the issuer rotates: a new key, and tokens signed with it
    keys.rotate()
    # Then the unknown kid makes the edge fetch the JWKS again, and the token is accepted
    assert list_orders(edge, make_token(issuer, "carol")) == grpc.StatusCode.OK
    assert keys.fetches == 2
    # and the old key keeps working from the refreshed set, without another fetch
    assert list_orders(edge, make_token(issuer, "bob")) == grpc.StatusCode.OK
    assert list_orders(edge, first) == grpc.StatusCode.OK
    assert keys.fetches == 2


def test_unknown_kids_refetch_the_jwks_at_most_once_per_cool_down(
    edge_factory: EdgeFactory, counted: tuple[LocalIssuer, CountingKeys]
) -> None:
    # Given an edge whose cool-down between refetches outlasts the test
    issuer, keys = counted
    edge = edge_of(edge_factory, issuer, jwt_jwks_refetch_seconds=3600)
    assert list_orders(edge, make_token(issuer, "alice")) == grpc.StatusCode.OK
    # When a flood of tokens names kids the issuer never published
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(make_token(issuer, "alice"), options={"verify_signature": False})
    made_up = [
        jwt.encode(claims, forged, algorithm="RS256", headers={"kid": f"made-up-{n}"}) for n in range(20)
    ]
    answers = {list_orders(edge, token) for token in made_up}
    # Then each is refused, and none of them made the edge fetch the JWKS again
    assert answers == {grpc.StatusCode.UNAUTHENTICATED}
    assert keys.fetches == 1


def test_an_unreachable_jwks_is_unavailable_not_unauthenticated(
    edge_factory: EdgeFactory, counted: tuple[LocalIssuer, CountingKeys]
) -> None:
    issuer, _ = counted
    # a port this run holds and nothing listens on (a released kernel-chosen one could be reused)
    edge = edge_factory(
        jwt_issuer=issuer.url, jwt_jwks_url=f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    )
    assert list_orders(edge, make_token(issuer, "alice")) == grpc.StatusCode.UNAVAILABLE
