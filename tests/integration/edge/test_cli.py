"""`order-saga token`, `orders ...` and `inventory ...` against a real edge and database."""

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import jwt
import pytest
import redis
from click.testing import CliRunner, Result

from devstack import devtokens
from devstack.cli import main
from order_saga.db import Database
from order_saga.settings import Settings
from tests.support.edge import Edge, EdgeFactory

Catalog = dict[str, tuple[int, Decimal]]
ISSUER, AUDIENCE = "order-saga-cli-test", "orders-api-cli-test"


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """The CLI loads `.devstack/env` into the process; the next test gets its environment back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def dev_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Path:
    """The CLI's dev key pair in a scratch folder, and the CLI pointed at the test database."""
    monkeypatch.setattr(devtokens, "KEY_DIR", tmp_path / "jwt")
    monkeypatch.setattr(devtokens, "update_env", lambda **_: None)  # leave .devstack/env alone
    for name, value in {
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "MYSQL_DATABASE": settings.mysql_database,
        "REDIS_URL": settings.redis_url,
    }.items():
        monkeypatch.setenv(name, value)
    return devtokens.ensure_dev_keys()


@pytest.fixture
def cli_edge(edge_factory: EdgeFactory, dev_keys: Path) -> Edge:
    return edge_factory(jwt_public_key_file=dev_keys, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def orders_cli(edge: Edge, *args: str, user: str = "carol") -> Result:
    return run("orders", "--address", f"127.0.0.1:{edge.port}", "--user", user, *args)


def test_token_mints_an_rs256_token_the_dev_public_key_verifies(dev_keys: Path) -> None:
    result = run("token", "--sub", "dave", "--scope", "orders:read")
    claims = jwt.decode(result.output.strip(), dev_keys.read_text(), algorithms=["RS256"], audience=AUDIENCE)
    assert (claims["sub"], claims["scope"], claims["iss"]) == ("dave", "orders:read", ISSUER)
    assert (dev_keys.parent / "dev-signing-key.pem").stat().st_mode & 0o777 == 0o600


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


def test_inventory_set_and_list(dev_keys: Path, database: Database, redis_client: "redis.Redis") -> None:
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


def test_inventory_set_refuses_stock_below_the_reserved_units(dev_keys: Path, database: Database) -> None:
    run("inventory", "set", "mug", "--stock", "7", "--price", "9.90")
    with database.transaction() as cursor:
        cursor.execute("UPDATE inventory SET reserved = 5 WHERE product_id = 'mug'")

    result = run("inventory", "set", "mug", "--stock", "3", "--price", "9.90")

    assert result.exit_code == 1
    assert "below the reserved units" in result.output
