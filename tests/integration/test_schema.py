"""The database itself enforces the invariants of its tables (docs/architecture.md), whatever
the code above it does."""

import uuid
from datetime import datetime

import pymysql
import pytest

from order_saga.db import Database
from order_saga.migrate import apply_migrations

# A failed CHECK: MariaDB 4025, MySQL 8.0 3819.
CHECK_FAILED = {4025, 3819}
DUPLICATE_KEY = 1062


def insert_product(db: Database, product_id: str = "sku-1", stock: int = 5, reserved: int = 0) -> None:
    with db.transaction() as cursor:
        cursor.execute(
            "INSERT INTO inventory (product_id, stock, reserved, unit_price, currency)"
            " VALUES (%s, %s, %s, %s, %s)",
            (product_id, stock, reserved, "9.99", "EUR"),
        )


def insert_order(db: Database, user_id: str = "user-1", key: str = "key-1") -> str:
    order_id = str(uuid.uuid4())
    with db.transaction() as cursor:
        cursor.execute(
            "INSERT INTO orders (order_id, user_id, idempotency_key, request_hash, total, currency,"
            " payment_token) VALUES (%s, %s, %s, %s, %s, %s, 'tok_visa')",
            (order_id, user_id, key, "0" * 64, "9.99", "EUR"),
        )
    return order_id


@pytest.mark.parametrize("reserved", [6, -1])
def test_reserved_stays_between_zero_and_stock(database: Database, reserved: int) -> None:
    # Given a product with 5 in stock
    insert_product(database, stock=5)
    # When something sets reserved outside [0, stock]
    with pytest.raises(pymysql.err.MySQLError) as raised, database.transaction() as cursor:
        cursor.execute("UPDATE inventory SET reserved = %s WHERE product_id = 'sku-1'", (reserved,))
    # Then the CHECK constraint refuses it and nothing changed
    assert raised.value.args[0] in CHECK_FAILED
    with database.transaction() as cursor:
        cursor.execute("SELECT reserved FROM inventory WHERE product_id = 'sku-1'")
        assert cursor.fetchone() == {"reserved": 0}


def test_a_product_cannot_be_created_oversold(database: Database) -> None:
    with pytest.raises(pymysql.err.MySQLError) as raised:
        insert_product(database, stock=1, reserved=2)
    assert raised.value.args[0] in CHECK_FAILED


def test_one_order_per_user_and_idempotency_key(database: Database) -> None:
    insert_order(database, "user-1", "key-1")
    insert_order(database, "user-2", "key-1")  # another user may use the same key
    with pytest.raises(pymysql.err.IntegrityError) as raised:
        insert_order(database, "user-1", "key-1")
    assert raised.value.args[0] == DUPLICATE_KEY


def test_one_payment_per_order(database: Database) -> None:
    order_id = insert_order(database)
    statement = (
        "INSERT INTO payments (payment_id, order_id, amount, currency, status) "
        "VALUES (%s, %s, 9.99, 'EUR', 'SUCCESS')"
    )
    with database.transaction() as cursor:
        cursor.execute(statement, (str(uuid.uuid4()), order_id))
    with pytest.raises(pymysql.err.IntegrityError) as raised, database.transaction() as cursor:
        cursor.execute(statement, (str(uuid.uuid4()), order_id))
    assert raised.value.args[0] == DUPLICATE_KEY


def test_an_order_names_each_product_once(database: Database) -> None:
    insert_product(database)
    order_id = insert_order(database)
    statement = (
        "INSERT INTO order_items (order_id, product_id, quantity, unit_price) VALUES (%s, 'sku-1', 1, 9.99)"
    )
    with pytest.raises(pymysql.err.IntegrityError), database.transaction() as cursor:
        cursor.execute(statement, (order_id,))
        cursor.execute(statement, (order_id,))
    with database.transaction() as cursor:
        cursor.execute("SELECT COUNT(*) AS n FROM order_items")
        assert cursor.fetchone() == {"n": 0}  # the whole transaction was rolled back


@pytest.mark.parametrize(
    ("status", "claimant", "sent"),
    [("SENDING", None, False), ("SENDING", "consumer", True), ("SENT", None, False)],
)
def test_a_notice_is_claimed_by_someone_or_sent_at_a_time(
    database: Database, status: str, claimant: str | None, sent: bool
) -> None:
    # Given an order, when a notice row says SENDING without its claimant, or SENDING with a send
    # time, or SENT without one, then the CHECK constraint refuses it
    order_id = insert_order(database)
    with pytest.raises(pymysql.err.MySQLError) as raised, database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO notifications (order_id, kind, status, claimant, claimed_at, sent_at)"
            " VALUES (%s, 'ORDER_CONFIRMATION', %s, %s, CURRENT_TIMESTAMP(3), %s)",
            (order_id, status, claimant, datetime(2026, 12, 6) if sent else None),
        )
    assert raised.value.args[0] in CHECK_FAILED


def test_migrations_applied_twice_change_nothing(database: Database) -> None:
    def schema() -> list[str]:
        with database.transaction() as cursor:
            cursor.execute("SHOW TABLES")
            tables = sorted(next(iter(row.values())) for row in cursor.fetchall())
            definitions = []
            for table in tables:
                cursor.execute(f"SHOW CREATE TABLE `{table}`")
                row = cursor.fetchone()
                assert row is not None
                definitions.append(row["Create Table"])
        return definitions

    before = schema()
    assert apply_migrations(database.credentials) == []
    assert apply_migrations(database.credentials) == []
    assert schema() == before
