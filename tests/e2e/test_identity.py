"""Identity through the running stack's edge, as in production: customers with their own access
tokens, services acting for the customer they name in `x-customer-id`, tokens from the local
token issuer and verified through its JWKS (the path Cognito's take in AWS)."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from order_saga.manifest import SCOPE_READ, SCOPE_WRITE
from tests.support.stack import Customer, LocalStack

STOREFRONT = "storefront"


def status_of(call: Callable[[], object]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def refused(call: object, *args: object) -> grpc.StatusCode:
    """The status code an RPC was refused with (the test fails if it was served)."""
    with pytest.raises(grpc.RpcError) as error:
        call(*args)  # type: ignore[operator]
    return error.value.code()


def test_a_service_acts_for_the_customer_it_names_and_sees_only_that_customers_orders(
    stack: LocalStack,
) -> None:
    # Given a storefront with orders:act-as that creates an order for alice
    for_alice = stack.service(STOREFRONT, "alice")
    order = for_alice.create({"sku-1": 1})
    # Then the order is alice's: she reads it with her own token
    assert order.user_id == "alice"
    assert stack.customer("alice").get(order.order_id).user_id == "alice"
    # and bob does not find it, with his own token or through the storefront
    for bob in (stack.customer("bob"), stack.service(STOREFRONT, "bob")):
        assert refused(bob.get, order.order_id) == grpc.StatusCode.NOT_FOUND
    # The storefront listing for alice sees her orders only (bob's own order is not among them)
    bobs = stack.customer("bob").create({"sku-1": 1})
    assert [listed.order_id for listed in for_alice.orders()] == [order.order_id]
    assert [listed.order_id for listed in stack.service(STOREFRONT, "bob").orders()] == [bobs.order_id]
    # The saga log names the customer and the client that acted for her
    logged = stack.query(
        "SELECT customer_id, client_id FROM saga_log WHERE saga_id = %s AND step = 'CreateOrder'",
        order.order_id,
    )
    assert logged == [{"customer_id": "alice", "client_id": STOREFRONT}]
    stack.finish(order.order_id)
    stack.finish(bobs.order_id)


def test_a_service_without_act_as_cannot_act_for_a_customer(stack: LocalStack) -> None:
    plain = stack.service("reporting", "alice", scopes=(SCOPE_READ, SCOPE_WRITE))
    assert refused(plain.create, {"sku-1": 1}) == grpc.StatusCode.PERMISSION_DENIED
    assert refused(plain.orders) == grpc.StatusCode.PERMISSION_DENIED
    # nor as itself: a service is nobody's customer
    alone = stack.service("reporting", None, scopes=(SCOPE_READ, SCOPE_WRITE))
    assert refused(alone.orders) == grpc.StatusCode.PERMISSION_DENIED
    assert stack.query("SELECT order_id FROM orders") == []


def test_act_as_naming_no_customer_or_a_malformed_one_creates_nothing(stack: LocalStack) -> None:
    for named in (None, "", "a" * 129, "../bob", "alice bob", "-alice", "alice%40"):
        service = stack.service(STOREFRONT, named)
        assert refused(service.create, {"sku-1": 1}) == grpc.StatusCode.INVALID_ARGUMENT, named
    assert stack.query("SELECT order_id FROM orders") == []


def test_a_customer_naming_another_customer_is_permission_denied(stack: LocalStack) -> None:
    alice = stack.customer("alice")
    naming_bob = Customer(alice.stub, alice.token, acting_for="bob")
    assert refused(naming_bob.create, {"sku-1": 1}) == grpc.StatusCode.PERMISSION_DENIED
    # naming herself changes nothing
    herself = Customer(alice.stub, alice.token, acting_for="alice")
    order = herself.create({"sku-1": 1})
    assert order.user_id == "alice"
    stack.finish(order.order_id)


def test_an_id_token_is_refused(stack: LocalStack) -> None:
    holder = Customer(stack.customer("alice").stub, lambda: stack.issuer.id_token("alice"))
    assert refused(holder.orders) == grpc.StatusCode.UNAUTHENTICATED


def test_the_rate_limit_is_per_customer_behind_one_service(stack: LocalStack) -> None:
    limit = int(stack.stack_env().get("RATE_LIMIT_PER_MINUTE", "600"))
    for attempt in range(3):  # a minute's window can end mid-test on a slow machine: then again
        window = int(time.time() // 60)
        carol, dave = (
            stack.service(STOREFRONT, f"carol-{attempt}"),
            stack.service(STOREFRONT, f"dave-{attempt}"),
        )
        # When carol's calls, eight at a time, go past her limit
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(status_of, [carol.orders] * (limit + 1)))
        # Then dave, behind the same storefront, is served, and carol is still refused
        dave_answer, carol_again = status_of(dave.orders), status_of(carol.orders)
        if int(time.time() // 60) == window:
            break
    assert answers.count(grpc.StatusCode.OK) == limit
    assert answers.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 1
    assert (dave_answer, carol_again) == (grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_a_key_withdrawn_from_the_jwks_stops_verifying_after_the_key_cache_expires(
    stack: LocalStack,
) -> None:
    # Given a token signed with the issuer's current key, which the edge accepts
    old_kid = stack.issuer.keys.signing_key()[0]
    old = stack.customer("alice")
    old_token = old.token()
    holder = Customer(old.stub, lambda: old_token)
    assert holder.orders() == []
    # When the issuer rotates its key and withdraws the old one
    stack.issuer.keys.rotate()
    stack.issuer.keys.withdraw(old_kid)
    # Then once the edge's key cache (JWT_JWKS_CACHE_SECONDS, short on this stack) has expired,
    # the old token is refused and a token of the new key is accepted
    time.sleep(float(stack.env["JWT_JWKS_CACHE_SECONDS"]) + 0.5)
    assert refused(holder.orders) == grpc.StatusCode.UNAUTHENTICATED
    assert stack.customer("alice").orders() == []
