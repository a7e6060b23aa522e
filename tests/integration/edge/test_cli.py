"""`order-saga token`, `issuer ...`, `orders ...` and `inventory ...` against a real edge, the
local token issuer and a real database."""

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest
import redis
from click.testing import CliRunner, Result

from devstack import services
from devstack.cli import main
from devstack.issuer.keys import KeyRing
from devstack.issuer.server import serving_issuer
from devstack.issuer.tokens import LocalIssuer
from order_saga.db import Database
from order_saga.settings import Settings
from tests.support.edge import Edge, EdgeFactory

Catalog = dict[str, tuple[int, Decimal]]


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """The CLI loads `.devstack/env` into the process; the next test gets its environment back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def cli_issuer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[LocalIssuer]:
    """The CLI's token issuer with its state in a scratch folder (serving its JWKS), and the CLI
    pointed at the test database."""
    monkeypatch.setattr(services, "STATE_DIR", tmp_path)
    with serving_issuer(KeyRing(tmp_path / "issuer" / "keys")) as issuer:
        for name, value in {
            "DEVSTACK_ISSUER_PORT": str(urlsplit(issuer.url).port),
            "MYSQL_DATABASE": settings.mysql_database,
            "REDIS_URL": settings.redis_url,
        }.items():
            monkeypatch.setenv(name, value)
        yield issuer


@pytest.fixture
def cli_edge(edge_factory: EdgeFactory, cli_issuer: LocalIssuer) -> Edge:
    return edge_factory(jwt_issuer=cli_issuer.url, jwt_jwks_url=cli_issuer.jwks_url)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def orders_cli(edge: Edge, *args: str, user: str = "carol") -> Result:
    return run("orders", "--address", f"127.0.0.1:{edge.port}", "--user", user, *args)


def claims_of(token: str, issuer: LocalIssuer) -> dict[str, object]:
    """The claims of a token, verified with the key the issuer's JWKS names by its kid."""
    key = jwt.PyJWKClient(issuer.jwks_url).get_signing_key_from_jwt(token).key
    return dict(
        jwt.decode(token, key, algorithms=["RS256"], issuer=issuer.url, options={"verify_aud": False})
    )


def test_token_mints_cognito_shaped_tokens_the_issuers_jwks_verifies(cli_issuer: LocalIssuer) -> None:
    customer = claims_of(run("token", "--sub", "dave", "--scope", "orders:read").output.strip(), cli_issuer)
    assert (customer["sub"], customer["client_id"], customer["token_use"], customer["scope"]) == (
        "dave", "order-saga-local-app", "access", "orders-api/orders:read",
    )  # fmt: skip
    service = claims_of(run("token", "--client", "storefront").output.strip(), cli_issuer)
    assert (service["sub"], service["client_id"], service["token_use"]) == (
        "storefront",
        "storefront",
        "access",
    )
    assert service["scope"] == "orders-api/orders:read orders-api/orders:write orders-api/orders:act-as"
    identity = claims_of(run("token", "--sub", "dave", "--id-token").output.strip(), cli_issuer)
    assert (identity["token_use"], identity["aud"], "scope" in identity) == (
        "id",
        "order-saga-local-app",
        False,
    )
    (key_file,) = (cli_issuer.keys.directory).glob("*.pem")
    assert key_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "args", [("token",), ("token", "--sub", "a", "--client", "b"), ("token", "--client", "b", "--id-token")]
)
def test_token_needs_exactly_one_kind_of_caller(cli_issuer: LocalIssuer, args: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 2
    assert "--sub" in result.output


def test_issuer_rotates_and_withdraws_its_keys(cli_issuer: LocalIssuer) -> None:
    first = cli_issuer.keys.signing_key()[0]
    rotated = run("issuer", "rotate-key")
    second = cli_issuer.keys.signing_key()[0]
    assert (rotated.output.strip(), run("issuer", "keys").output.split()) == (
        f"signing with {second}",
        [first, second],
    )
    assert run("issuer", "withdraw-key", first).output.strip() == f"withdrew {first}"
    assert [key["kid"] for key in cli_issuer.keys.jwks()["keys"]] == [second]
    unknown = CliRunner().invoke(main, ["issuer", "withdraw-key", first])
    assert (unknown.exit_code, f"no published key {first!r}" in unknown.output) == (1, True)


def test_orders_act_for_a_customer_as_a_service(cli_edge: Edge, shop: Catalog) -> None:
    created = run(
        "orders", "--address", f"127.0.0.1:{cli_edge.port}", "--client", "storefront", "--for", "erin",
        "create", "--item", "pen", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    order_id = json.loads(created.output)["order_id"]
    assert json.loads(created.output)["user_id"] == "erin"
    assert order_id in orders_cli(cli_edge, "get", order_id, user="erin").output
    logged = cli_edge.sql("SELECT customer_id, client_id FROM saga_log WHERE saga_id = %s", (order_id,))
    assert logged == [{"customer_id": "erin", "client_id": "storefront"}]


def test_orders_create_get_list_cancel_watch(cli_edge: Edge, shop: Catalog) -> None:
    # create, as JSON
    created = orders_cli(cli_edge, "create", "--item", "book=2", "--item", "pen", "--json")
    assert created.exit_code == 0, created.output
    order = json.loads(created.output)
    assert (order["status"], order["total"], order["user_id"]) == ("ORDER_STATUS_PENDING", "26.20", "carol")
    order_id = order["order_id"]

    # get and list, as tables
    got = orders_cli(cli_edge, "get", order_id)
    assert order_id in got.output
    assert "PENDING" in got.output
    listed = orders_cli(cli_edge, "list")
    assert order_id in listed.output.splitlines()[2]

    # cancel: a PENDING order is flagged
    cancelled = orders_cli(cli_edge, "cancel", order_id, "--reason", "test", "--json")
    assert json.loads(cancelled.output)["cancel_requested"] is True

    # watch: a terminal order is printed once and the command ends
    cli_edge.sql("UPDATE orders SET status = 'CANCELLED' WHERE order_id = %s", (order_id,))
    watched = orders_cli(cli_edge, "watch", order_id)
    assert watched.exit_code == 0
    assert watched.output.strip().endswith("CANCELLED")


def test_a_refused_rpc_prints_its_code_and_field_violations(cli_edge: Edge, shop: Catalog) -> None:
    result = orders_cli(cli_edge, "create", "--item", "book=0")
    assert result.exit_code == 1
    assert "INVALID_ARGUMENT" in result.stderr
    assert "items[0].quantity" in result.stderr

    another = orders_cli(cli_edge, "get", "00000000-0000-4000-8000-000000000000")
    assert (another.exit_code, "NOT_FOUND" in another.stderr) == (1, True)


def test_inventory_set_and_list(
    cli_issuer: LocalIssuer, database: Database, redis_client: "redis.Redis"
) -> None:
    result = run("inventory", "set", "mug", "--stock", "7", "--price", "9.90", "--name", "Mug", "--json")
    assert json.loads(result.output) == {
        "product_id": "mug",
        "stock": 7,
        "reserved": 0,
        "unit_price": "9.90",
        "currency": "EUR",
        "available": 7,
    }
    assert redis_client.get("order-saga:available:mug") == "7"
    listed = run("inventory", "list")
    assert "mug" in listed.output
    assert "9.90" in listed.output


def test_inventory_set_refuses_stock_below_the_reserved_units(
    cli_issuer: LocalIssuer, database: Database
) -> None:
    run("inventory", "set", "mug", "--stock", "7", "--price", "9.90")
    with database.transaction() as cursor:
        cursor.execute("UPDATE inventory SET reserved = 5 WHERE product_id = 'mug'")

    result = run("inventory", "set", "mug", "--stock", "3", "--price", "9.90")

    assert result.exit_code == 1
    assert "below the reserved units" in result.output
