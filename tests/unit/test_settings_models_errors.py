import socket
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pymysql
import pytest
from pydantic import ValidationError
from pytest_socket import SocketBlockedError

from order_saga import errors
from order_saga.cache import redacted_url
from order_saga.db import Credentials, translate_error
from order_saga.models import OrderItem, OrderStatus, Product
from order_saga.order_service import stored_timestamp
from order_saga.settings import Settings

CREDS = Credentials("db.example", 3306, "orders", "secret", "orders")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the variables that .devstack/env and the CDK stacks set
    monkeypatch.setenv("MYSQL_PORT", "33306")
    monkeypatch.setenv("REDIS_URL", "rediss://cache.example:6379/0")
    # When the settings are read
    settings = Settings()
    # Then they carry those values
    assert settings.mysql_port == 33306
    assert settings.redis_url == "rediss://cache.example:6379/0"


def test_a_value_given_wins_over_the_environment_and_unknown_names_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MYSQL_PORT", "33306")
    monkeypatch.setenv("mysql_tls", "true")
    settings = Settings(mysql_port=3307, not_a_setting="x")
    assert (settings.mysql_port, settings.mysql_tls) == (3307, True)


def test_a_malformed_setting_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYSQL_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="mysql_port"):
        Settings()


@pytest.mark.parametrize("quantity", [0, -1, 1001])
def test_order_item_quantity_is_bounded(quantity: int) -> None:
    with pytest.raises(ValidationError, match="quantity"):
        OrderItem(product_id="sku-1", quantity=quantity)


@pytest.mark.parametrize("product_id", ["", "a b", "x" * 37, "drop;table"])
def test_product_ids_are_plain_identifiers(product_id: str) -> None:
    with pytest.raises(ValidationError, match="product_id"):
        OrderItem(product_id=product_id, quantity=1)


def test_available_is_stock_minus_reserved() -> None:
    product = Product(product_id="sku-1", stock=10, reserved=3, unit_price=Decimal("2.50"), currency="EUR")
    assert product.available == 7


def test_terminal_statuses_end_a_watch() -> None:
    assert {s for s in OrderStatus if not s.is_terminal} == {OrderStatus.PENDING, OrderStatus.CANCELLING}


def test_business_and_transient_errors_are_disjoint() -> None:
    business = {cls.__name__ for cls in errors.BusinessError.__subclasses__()}
    transient = {cls.__name__ for cls in errors.TRANSIENT_ERRORS}
    assert {"PaymentDeclined", "OutOfStock", "OrderCancelled"} <= business
    assert transient == {cls.__name__ for cls in errors.TransientDependencyError.__subclasses__()}
    assert not business & transient


def test_access_denied_names_the_settings_to_fix() -> None:
    error = translate_error(pymysql.err.OperationalError(1045, "Access denied"), CREDS)
    assert isinstance(error, errors.ConfigurationError)
    assert "MYSQL_PASSWORD" in str(error)


@pytest.mark.parametrize("code", [1205, 1213, 2003, 2006, 2013])
def test_lost_connections_and_deadlocks_are_transient(code: int) -> None:
    error = translate_error(pymysql.err.OperationalError(code, "gone"), CREDS)
    assert isinstance(error, errors.DatabaseUnavailable)


def test_integrity_errors_are_left_to_the_caller() -> None:
    original = pymysql.err.IntegrityError(1062, "Duplicate entry")
    assert translate_error(original, CREDS) is original


def test_redis_passwords_never_reach_messages() -> None:
    assert redacted_url("rediss://default:hunter2@cache.example:6379/0") == (
        "rediss://default:***@cache.example:6379/0"
    )
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_the_network_is_blocked_in_unit_tests() -> None:
    with pytest.warns(UserWarning, match="socket"), pytest.raises(SocketBlockedError):
        socket.socket()


def test_a_new_orders_timestamp_is_stored_as_naive_utc_in_whole_milliseconds() -> None:
    # CreateOrder writes it and answers it without reading it back: both must be what the column holds
    in_paris = datetime(2026, 12, 6, 12, 30, 15, 123_999, tzinfo=timezone(timedelta(hours=1)))
    assert stored_timestamp(in_paris) == datetime(2026, 12, 6, 11, 30, 15, 123_000)
    assert stored_timestamp(datetime(2026, 1, 1, tzinfo=UTC)).tzinfo is None
